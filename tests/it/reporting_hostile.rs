//! `sync --reporting` against a hostile Reporting API and a real Postgres: pages far over what
//! was asked for are refused unread, and items Postgres cannot store are set aside while the
//! rest of their day lands.

use std::sync::Arc;

use crate::common::hostile::{campaign, page, serve, Hostile, Reply};
use crate::common::*;
use chrono::{NaiveDate, Utc};
use serde_json::{json, Value};

/// A loopback API with one campaign, whose every reporting page is `report`.
async fn api(report: Vec<u8>) -> Hostile {
    let report = Arc::new(report);
    serve(move |req| {
        if req.path().ends_with("/reporting/campaigns") {
            Reply::json(200, report.as_slice())
        } else if req.path().ends_with("/campaigns") {
            Reply::json(200, page("campaigns", &[campaign("c1", "One")], 1, 1))
        } else {
            Reply::json(200, page("users", &[], 0, 1))
        }
    })
    .await
}

/// A reporting page of `campaigns`, as the contract shapes it.
fn report(campaigns: &[Value]) -> Vec<u8> {
    json!({
        "msg": "Campaigns fetched successfully", "status": 200,
        "data": {"campaigns": campaigns,
                 "pagination": {"total": campaigns.len(), "pages": 1, "page": 1, "limit": 100},
                 "display_currency": "USD", "view": "user_acquisition"},
    })
    .to_string()
    .into_bytes()
}

fn item(display_id: &str, installs: &str) -> Value {
    json!({"id": 1, "display_id": display_id, "name": "One",
           "created_at": "2026-11-01T00:00:00.000Z", "installs": installs, "sign-ups": "1"})
}

/// A campaign with `ad_sets` ad sets of `creatives` creatives each.
fn nested(display_id: &str, ad_sets: usize, creatives: usize) -> Value {
    let mut campaign = item(display_id, "1");
    let ad_sets: Vec<Value> = (0..ad_sets)
        .map(|a| {
            let creatives: Vec<Value> = (0..creatives)
                .map(|c| json!({"id": format!("{a}-{c}"), "name": "Carousel", "installs": "1"}))
                .collect();
            json!({"id": a.to_string(), "name": "Lookalike", "installs": "5", "adCreatives": creatives})
        })
        .collect();
    campaign["adSets"] = ad_sets.into();
    campaign
}

fn command(db: &str, url: &str, since: NaiveDate) -> std::process::Command {
    let mut cmd = sync_command(db, url, "sim-key");
    cmd.args([
        "--reporting",
        "--reporting-timezone",
        "UTC",
        "--reporting-rpm",
        "6000",
    ]);
    cmd.args(["--since", &since.to_string()]);
    cmd
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn ledger(pool: &sqlx::PgPool) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT outcome, reporting_error FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test]
async fn a_page_over_what_was_asked_is_refused_unread_and_the_signup_sync_goes_on(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let db = database_url(&options);
    let today = Utc::now().date_naive();
    let over_limit: Vec<Value> = (0..150).map(|i| item(&format!("c{i}"), "1")).collect();
    // 2,100 ad sets of 5 creatives: 12,600 items below one campaign.
    let deep = vec![nested("c1", 2100, 5)];
    // More than the default budget of 8 MiB lets a page have.
    let huge = report(&[nested("c1", 60_000, 2)]);
    assert!(huge.len() > 8 << 20);
    let cases = [
        (report(&over_limit), "more than the 100 rows asked for"),
        (
            report(&deep),
            "more than 10000 ad sets, ad creatives and keywords",
        ),
        (huge, "larger than 8 MiB"),
    ];
    for (body, why) in cases {
        let server = api(body).await;
        let out = output(command(&db, &server.url, today)).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{why}: {err}");
        assert!(err.contains(why) && err.contains("refused unread"), "{err}");
        let asked = server
            .requests()
            .iter()
            .filter(|r| r.path().ends_with("/reporting/campaigns"))
            .count();
        assert_eq!(
            asked, 1,
            "{why}: a page that cannot be read is not asked again"
        );
        // The signup sync went on; the ledger says why reporting stopped.
        let (outcome, error) = ledger(&pool).await;
        assert_eq!(outcome, "success");
        let error = error.expect("the ledger says why");
        assert!(
            error.contains(why) && error.contains(&today.to_string()),
            "{error}"
        );
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.reporting_daily").await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.reporting_days WHERE read_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.campaigns").await,
        1
    );
}

#[sqlx::test]
async fn items_postgres_cannot_take_are_set_aside_and_every_day_lands_without_them(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let db = database_url(&options);
    let mut ad_set_too_long = nested("c3", 2, 1);
    ad_set_too_long["adSets"][0]["id"] = "a".repeat(3000).into();
    let mut nul_name = item("c4", "4");
    nul_name["name"] = "N\u{0}L".into();
    let campaigns = vec![
        // Listed twice with different numbers: neither is stored.
        item("c1", "1"),
        item("c1", "2"),
        // Listed twice the same: stored once.
        item("c2", "2"),
        item("c2", "2"),
        ad_set_too_long,
        nul_name,
        item(&"x".repeat(3000), "5"),
        item("c\u{0}", "6"),
        item("c5", "5"),
    ];
    let server = api(report(&campaigns)).await;
    let today = Utc::now().date_naive();
    let first = today - chrono::Duration::days(2);
    // One request: the newest day only.
    let mut once = command(&db, &server.url, first);
    once.args(["--reporting-max-requests", "1"]);
    let out = output(once).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("kept in linkrunner.rejected_rows"), "{err}");
    let read = "SELECT count(*) FROM linkrunner.reporting_days WHERE read_at IS NOT NULL";
    assert_eq!(count(&pool, read).await, 1);
    let (outcome, error) = ledger(&pool).await;
    assert_eq!(outcome, "success");
    assert!(error.unwrap().contains("could not be stored"));

    // The next run reads the days left, each with the rows Postgres can take.
    let out = output(command(&db, &server.url, first)).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let days = count(&pool, "SELECT count(*) FROM linkrunner.reporting_days").await;
    assert!(days >= 3, "{days} days");
    assert_eq!(count(&pool, read).await, days);
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT display_id, installs::text FROM linkrunner.reporting_daily ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        [
            ("c2".to_string(), "2".to_string()),
            ("c3".into(), "1".into()),
            ("c5".into(), "5".into())
        ]
    );
    // The ad set with a short id and its creative are stored; the other is set aside whole.
    let ad_sets: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT ad_set_id FROM linkrunner.reporting_ad_sets")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(ad_sets, ["1"]);
    assert_eq!(
        count(
            &pool,
            "SELECT count(DISTINCT ad_creative_id) FROM linkrunner.reporting_ad_creatives"
        )
        .await,
        1
    );
    let kept: Vec<(String, String)> = sqlx::query_as(
        "SELECT campaign_display_id, reason FROM linkrunner.rejected_rows
         WHERE kind = 'reporting' ORDER BY reason",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Each item once, however many days listed it.
    assert_eq!(kept.len(), 6, "{kept:?}");
    let reasons = |id: &str| -> Vec<&str> {
        kept.iter()
            .filter(|(c, _)| c == id)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    assert_eq!(reasons("c1").len(), 2);
    assert!(reasons("c1")[0].contains("2 times with different values"));
    assert!(reasons("c3")[0].contains("3000 bytes"), "{kept:?}");
    assert!(reasons("c4")[0].contains("NUL"), "{kept:?}");
    let unstorable = reasons("(display_id not storable)");
    assert_eq!(unstorable.len(), 2, "{kept:?}");
}
