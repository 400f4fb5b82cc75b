//! The Reporting API client against the simulator: a page read into rows whose sign-ups are the
//! attributed users of the project's local day, and the one-a-minute limit kept apart from the
//! sync's reads.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use linkrunner_sim::SimConfig;
use linkrunner_sync::api::reporting::{Level, ReportQuery};
use linkrunner_sync::api::{ApiClient, ApiError};
use linkrunner_sync::model::reporting::{Reading, METRICS};

fn client(server: &linkrunner_sim::SimServer) -> ApiClient {
    ApiClient::new(sync_config(server, "UTC").api).unwrap()
}

/// Sign-ups per campaign on each local day of `tz`, counted from the simulator's rows.
fn signups_by_day(
    sim: &linkrunner_sim::Simulator,
    tz: chrono_tz::Tz,
) -> HashMap<(String, NaiveDate), u64> {
    let mut days = HashMap::new();
    for campaign in sim.campaigns() {
        let id = campaign["display_id"].as_str().unwrap().to_string();
        for row in sim.attributed_users(&id) {
            let at: DateTime<Utc> = row["attributed_at"].as_str().unwrap().parse().unwrap();
            let day = at.with_timezone(&tz).date_naive();
            *days.entry((id.clone(), day)).or_insert(0) += 1;
        }
    }
    days
}

fn signups(metrics: &[Reading]) -> Reading {
    let i = METRICS.iter().position(|m| m.key == "sign-ups").unwrap();
    metrics[i].clone()
}

#[tokio::test]
async fn a_page_holds_each_campaigns_signups_of_the_projects_local_day() {
    let (sim, server) = start(SimConfig {
        reporting_limit: None,
        ..SimConfig::small(101)
    })
    .await;
    let by_day = signups_by_day(&sim, chrono_tz::Asia::Kolkata);
    let (&(_, busiest), _) = by_day.iter().max_by_key(|(_, n)| **n).unwrap();
    let api = client(&server);
    let query = ReportQuery {
        from: busiest,
        to: busiest,
        view: "user_acquisition",
        page: 1,
    };
    let page = api.reporting_page(&query).await.unwrap();
    assert_eq!(page.currency.as_deref(), Some("USD"));
    assert_eq!(page.campaigns.len(), sim.campaigns().len());
    // Oldest first, as asked.
    let created: Vec<_> = page.campaigns.iter().map(|(_, c)| c.unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
    let mut checked = 0;
    for row in page.rows.iter().filter(|r| r.level == Level::Campaign) {
        let expected = by_day.get(&(row.display_id.clone(), busiest)).copied();
        assert_eq!(
            signups(&row.metrics),
            Reading::Number(expected.unwrap_or(0).to_string()),
            "{}",
            row.display_id
        );
        assert!(row.unparsed.is_empty(), "{:?}", row.unparsed);
        checked += u64::from(expected.is_some());
    }
    assert!(checked > 0);
}

#[tokio::test]
async fn a_429_comes_back_at_once_and_never_slows_the_reads() {
    let (sim, server) = start(SimConfig::small(102)).await;
    let api = client(&server);
    let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let query = ReportQuery {
        from: day,
        to: day,
        view: "user_acquisition",
        page: 1,
    };
    api.reporting_page(&query).await.unwrap();
    let asked = Instant::now();
    let refused = api.reporting_page(&query).await;
    assert!(
        matches!(
            refused,
            Err(ApiError::RateLimited {
                retry_after: Some(d)
            }) if d == Duration::from_secs(60)
        ),
        "{refused:?}"
    );
    // The Data API's reads go on at once.
    api.campaigns(1, 100).await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(sim.stats().reporting_rate_limited, 1);
    assert_eq!(
        api.stats
            .reporting_rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_suspended_billing_account_is_a_402() {
    let (sim, server) = start(SimConfig {
        reporting_limit: None,
        ..SimConfig::small(103)
    })
    .await;
    sim.set_reporting_billing_suspended(true);
    let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let query = ReportQuery {
        from: day,
        to: day,
        view: "user_acquisition",
        page: 1,
    };
    let refused = client(&server).reporting_page(&query).await;
    assert!(
        matches!(refused, Err(ApiError::Rejected { status: 402, .. })),
        "{refused:?}"
    );
}
