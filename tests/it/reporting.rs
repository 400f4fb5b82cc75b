//! The Reporting API client against the simulator: a page read into rows whose sign-ups are the
//! attributed users of the project's local day, and the one-a-minute limit kept apart from the
//! sync's reads.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use chrono::{DateTime, NaiveDate, Utc};
use linkrunner_sim::SimConfig;
use linkrunner_sync::api::reporting::ReportQuery;
use linkrunner_sync::api::{ApiClient, ApiError};
use linkrunner_sync::model::reporting::{Level, Reading, METRICS};

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

/// The first page of one day's user-acquisition numbers.
fn one_day(day: NaiveDate) -> ReportQuery {
    ReportQuery {
        from: day,
        to: day,
        view: "user_acquisition",
        page: 1,
        memory: 8 << 20,
    }
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
    let query = one_day(busiest);
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
    let query = one_day(day);
    api.reporting_page(&query).await.unwrap();
    // Neither the refusal nor the Data API's reads wait out the minute (a guard well inside it).
    let refused = tokio::time::timeout(Duration::from_secs(30), api.reporting_page(&query))
        .await
        .expect("the refusal is given back, not waited out");
    assert!(
        matches!(
            refused,
            Err(ApiError::RateLimited {
                retry_after: Some(d)
            }) if d == Duration::from_secs(60)
        ),
        "{refused:?}"
    );
    tokio::time::timeout(Duration::from_secs(30), api.campaigns(1, 100))
        .await
        .expect("the Data API's reads go on")
        .unwrap();
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
    let query = one_day(day);
    let refused = client(&server).reporting_page(&query).await;
    assert!(
        matches!(refused, Err(ApiError::Rejected { status: 402, .. })),
        "{refused:?}"
    );
}

/// Each reporting table holds a column for every metric of the one list.
#[sqlx::test]
async fn every_reporting_table_has_every_metric(pool: sqlx::PgPool) {
    for table in [
        "reporting_daily",
        "reporting_ad_sets",
        "reporting_ad_creatives",
        "reporting_keywords",
    ] {
        let numeric: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'linkrunner' AND table_name = $1 AND data_type = 'numeric'
             ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        let metrics: Vec<&str> = METRICS.iter().map(|m| m.column).collect();
        assert_eq!(numeric, metrics, "{table}");
    }
}

/// Reads a day's first page and stores it: what was stored, of how many rows.
async fn read_and_store(
    api: &ApiClient,
    query: &ReportQuery,
    schema: &linkrunner_sync::db::Schema,
    conn: &mut sqlx::PgConnection,
) -> (linkrunner_sync::db::reporting::Stored, usize) {
    let page = api.reporting_page(query).await.unwrap();
    let day = linkrunner_sync::db::reporting::DayRows {
        day: query.from,
        view: query.view,
        timezone: "Asia/Kolkata",
        currency: page.currency.as_deref(),
        run_id: uuid::Uuid::new_v4(),
        rows: &page.rows,
        set_aside: &page.set_aside,
    };
    let stored = linkrunner_sync::db::reporting::store(schema, conn, &day)
        .await
        .unwrap();
    (stored, page.rows.len())
}

#[sqlx::test]
async fn a_day_is_stored_once_and_a_re_read_changes_only_what_changed(pool: sqlx::PgPool) {
    use linkrunner_sync::db::reporting::Stored;
    use linkrunner_sync::db::Schema;
    let (sim, server) = start(SimConfig {
        reporting_limit: None,
        ..SimConfig::small(104)
    })
    .await;
    let by_day = signups_by_day(&sim, chrono_tz::Asia::Kolkata);
    let (&(ref campaign, busiest), &signed_up) = by_day.iter().max_by_key(|(_, n)| **n).unwrap();
    let api = client(&server);
    let query = one_day(busiest);
    let schema = Schema::default();
    let mut conn = pool.acquire().await.unwrap();
    let mut stored = Vec::new();
    for _ in 0..2 {
        stored.push(read_and_store(&api, &query, &schema, &mut conn).await);
    }
    let (first, rows) = stored[0];
    assert_eq!(
        first,
        Stored {
            inserted: rows as u64,
            changed: 0,
            set_aside: 0
        }
    );
    assert_eq!(
        stored[1].0,
        Stored::default(),
        "an unchanged re-read rewrites nothing"
    );
    let signups: String = sqlx::query_scalar(
        "SELECT signups::text FROM linkrunner.reporting_daily WHERE display_id = $1 AND day = $2",
    )
    .bind(campaign)
    .bind(busiest)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(signups, signed_up.to_string());

    // Late installs for past days: the re-read updates the rows whose numbers moved.
    sim.bump_reporting_revision();
    let (after, _) = read_and_store(&api, &query, &schema, &mut conn).await;
    assert_eq!(after.inserted, 0);
    assert!(
        after.changed > 0 && after.changed < rows as u64,
        "{after:?} of {rows}"
    );
}
