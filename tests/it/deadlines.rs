//! No stream holds the run: attribution look-ups and the Reporting API each stop at their
//! deadline, or at once on a `Retry-After` that would outlast it, saying so in the ledger; and
//! when the streams of one run end differently, the exit code follows one order.

use std::sync::Arc;
use std::time::Duration;

use crate::common::hostile::{self, Hostile, Reply};
use crate::common::*;
use chrono::NaiveDate;
use linkrunner_sync::config::{LookupSettings, ReportingSettings, SyncConfig};
use linkrunner_sync::error::Failure;
use linkrunner_sync::sync;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How each stream's endpoint answers.
#[derive(Clone, Copy)]
enum Hostility {
    Fine,
    /// Accepts and never answers.
    Hang,
    /// Sends its headers and body a byte every 200 ms.
    Trickle,
    /// 429 with this `Retry-After`, if any.
    RateLimited(Option<u32>),
    /// This status, with an error body.
    Status(u16),
}

impl Hostility {
    fn reply(self, fine: impl FnOnce() -> Reply) -> Reply {
        match self {
            Hostility::Fine => fine(),
            Hostility::Hang | Hostility::Trickle => Reply::Hang,
            Hostility::RateLimited(retry_after) => Reply::Body {
                status: 429,
                headers: retry_after
                    .map(|s| vec![("retry-after".to_owned(), s.to_string())])
                    .unwrap_or_default(),
                body: br#"{"msg":"Too many requests"}"#.to_vec(),
            },
            Hostility::Status(status) => {
                Reply::json(status, format!(r#"{{"msg":"no","status":{status}}}"#))
            }
        }
    }
}

const FOUND: &str = r#"{"msg":"ok","status":200,"data":{"campaign_name":"One","display_id":"c1","attribution_type":"INORGANIC"}}"#;

/// One campaign `c1` with users u1..u3, and `bad_row` extra users Postgres cannot store;
/// look-ups and reporting answer as told.
async fn api(lookups: Hostility, reporting: Hostility, bad_row: bool) -> Hostile {
    let mut users: Vec<String> = (1..=3)
        .map(|i| hostile::user("c1", &format!("u{i}"), "2026-11-02T10:00:00.000Z"))
        .collect();
    if bad_row {
        users.push(hostile::user("c1", "u\u{0}4", "2026-11-02T11:00:00.000Z"));
    }
    hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        "/attributed-users" => {
            Reply::json(200, hostile::page("users", &users, users.len() as u64, 1))
        }
        "/get-attribution-result" => lookups.reply(|| Reply::json(200, FOUND)),
        "/reporting/campaigns" => reporting.reply(|| {
            Reply::json(
                200,
                r#"{"msg":"ok","status":200,"data":{"currency":"USD","campaigns":[],"pagination":{"total":0,"pages":0,"page":1,"limit":100}}}"#,
            )
        }),
        _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
    })
    .await
}

fn reporting_settings(max_requests: u32) -> ReportingSettings {
    ReportingSettings {
        timezone: chrono_tz::UTC,
        since: NaiveDate::from_ymd_opt(2026, 11, 2),
        last: NaiveDate::from_ymd_opt(2026, 11, 5),
        views: vec!["user_acquisition"],
        rpm: 6000.0,
        max_requests,
        lookback_days: 1,
        refresh: chrono::Duration::hours(1),
    }
}

/// Settings for a run over November 2026 with look-ups and/or reporting, each request cut
/// after 5 s and retried once.
fn config(api: &Hostile, lookups: bool, reporting: Option<u32>) -> SyncConfig {
    let mut config = sync_config_for(&api.url);
    config.api.timeout = Duration::from_secs(5);
    config.api.max_retries = 1;
    config.since = Some("2026-11-01T00:00:00Z".parse().unwrap());
    config.lookups = lookups.then(|| LookupSettings {
        sources: Vec::new(),
        max: 1000,
    });
    config.reporting = reporting.map(reporting_settings);
    config
}

/// What the ledger says of the last run: outcome, lookups_stopped, reporting_error.
async fn ledger(pool: &PgPool) -> (String, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT outcome, lookups_stopped, reporting_error FROM linkrunner.sync_runs
         ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn asked(api: &Hostile, path: &str) -> usize {
    api.requests().iter().filter(|r| r.path() == path).count()
}

#[sqlx::test]
async fn look_ups_that_never_answer_stop_at_their_deadline_and_the_rows_land(pool: PgPool) {
    let api = api(Hostility::Hang, Hostility::Fine, false).await;
    let mut config = config(&api, true, None);
    config.lookup_time = Duration::from_millis(300);
    let report = sync::run(&config, &pool).await.unwrap();
    assert_eq!(report.totals.users.rows_inserted, 3);
    let stopped = report.totals.lookups.stopped.as_deref().unwrap_or_default();
    assert!(stopped.contains("--lookup-time"), "{stopped:?}");
    let (outcome, in_ledger, _) = ledger(&pool).await;
    assert_eq!(outcome, "success");
    assert_eq!(in_ledger.as_deref(), Some(stopped));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attribution_results").await,
        0,
        "the ids stay due for the next run"
    );
}

#[sqlx::test]
async fn a_look_up_retry_after_longer_than_the_run_may_wait_ends_look_ups_at_once(pool: PgPool) {
    let api = api(Hostility::RateLimited(Some(86_400)), Hostility::Fine, false).await;
    let report = sync::run(&config(&api, true, None), &pool).await.unwrap();
    let stopped = report.totals.lookups.stopped.unwrap_or_default();
    assert!(stopped.contains("86400 s"), "{stopped}");
    assert!(stopped.contains("try again after 20"), "{stopped}");
    let (_, in_ledger, _) = ledger(&pool).await;
    assert_eq!(in_ledger, Some(stopped));
    // Each id in flight asked once: none waited to ask again.
    assert!(asked(&api, "/get-attribution-result") <= 3);
}

#[sqlx::test]
async fn a_reporting_retry_after_longer_than_the_run_may_wait_ends_reporting_at_once(pool: PgPool) {
    let api = api(Hostility::Fine, Hostility::RateLimited(Some(86_400)), false).await;
    let report = sync::run(&config(&api, false, Some(1)), &pool)
        .await
        .unwrap();
    assert_eq!(report.totals.reporting.requests, 1);
    assert_eq!(report.totals.reporting.rate_limited, 1);
    let (outcome, _, error) = ledger(&pool).await;
    assert_eq!(outcome, "success");
    let error = error.unwrap_or_default();
    assert!(error.contains("86400 s"), "{error}");
    assert!(error.contains("try again after 20"), "{error}");
}

#[sqlx::test]
async fn reporting_that_never_answers_stops_at_its_deadline_as_partial(pool: PgPool) {
    let api = api(Hostility::Fine, Hostility::Hang, false).await;
    let mut config = config(&api, false, Some(10));
    config.reporting_time = Duration::from_millis(300);
    let e = sync::run(&config, &pool).await.unwrap_err();
    assert_eq!(e.code(), 4, "{}", e.one_line());
    assert!(
        e.one_line().contains("--reporting-time"),
        "{}",
        e.one_line()
    );
    assert_eq!(asked(&api, "/reporting/campaigns"), 1);
    let (outcome, _, error) = ledger(&pool).await;
    assert_eq!(outcome, "success", "the signup sync itself succeeded");
    assert!(error.unwrap_or_default().contains("--reporting-time"));
}

#[sqlx::test]
async fn a_base_url_without_the_look_up_endpoint_is_configuration(pool: PgPool) {
    let api = api(Hostility::Status(404), Hostility::Fine, false).await;
    let e = sync::run(&config(&api, true, None), &pool)
        .await
        .unwrap_err();
    assert!(matches!(e, Failure::Config(_)), "{e:?}");
    assert!(e.one_line().contains("get-attribution-result"));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await,
        3,
        "the signup rows landed"
    );
}

/// A row set aside (exit 4 alone) does not hide the Reporting API's refusal of the key (3) or
/// of the job's query or base URL (2).
#[sqlx::test]
async fn a_refusal_of_reporting_outranks_a_row_set_aside(pool: PgPool) {
    for (status, code) in [(401, 3), (422, 2), (404, 2), (200, 4)] {
        let reporting = match status {
            200 => Hostility::Fine,
            s => Hostility::Status(s),
        };
        let api = api(Hostility::Fine, reporting, true).await;
        let e = sync::run(&config(&api, false, Some(1)), &pool)
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "reporting {status}: {}", e.one_line());
    }
}

/// Seconds each hostile endpoint holds a run, with the default deadlines (`--lookup-time 2m`,
/// `--reporting-time 5m`): `cargo test --all-features --test deadlines -- --ignored
/// --nocapture seconds_a_hostile_endpoint_holds_the_run`.
#[sqlx::test]
#[ignore = "a measurement of minutes; prints its numbers"]
async fn seconds_a_hostile_endpoint_holds_the_run(pool: PgPool) {
    let cases = [
        ("look-ups never answer", Hostility::Hang, Hostility::Fine),
        ("look-ups slowloris", Hostility::Trickle, Hostility::Fine),
        (
            "look-ups 429, no Retry-After",
            Hostility::RateLimited(None),
            Hostility::Fine,
        ),
        ("look-ups 500", Hostility::Status(500), Hostility::Fine),
        (
            "look-ups Retry-After: 86400",
            Hostility::RateLimited(Some(86_400)),
            Hostility::Fine,
        ),
        (
            "reporting Retry-After: 86400",
            Hostility::Fine,
            Hostility::RateLimited(Some(86_400)),
        ),
    ];
    println!("| endpoint | run lock held (s) | process held (s) | exit |");
    println!("|---|---|---|---|");
    for (name, lookups, reporting) in cases {
        let api = match lookups {
            Hostility::Trickle => trickling_api().await,
            _ => api(lookups, reporting, false).await,
        };
        let reporting = matches!(reporting, Hostility::RateLimited(_)).then_some(4);
        // The shipped retries and time limit.
        let mut config = config(&api, reporting.is_none(), reporting);
        config.api.timeout = Duration::from_secs(30);
        config.api.max_retries = 8;
        config.api.retry_min_delay = Duration::from_secs(1);
        config.api.retry_max_delay = Duration::from_secs(60);
        config.api.rps = 10.0;
        if let Some(settings) = &mut config.reporting {
            settings.rpm = 1.0;
        }
        let started = std::time::Instant::now();
        let result = sync::run(&config, &pool).await;
        let held = started.elapsed().as_secs_f64();
        let run_lock: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM finished_at - started_at)::float8
             FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let code = result.err().map_or(0, |e| e.code());
        println!("| {name} | {run_lock:.1} | {held:.1} | {code} |");
    }
}

/// As [`api`] with fine reporting, but the look-up endpoint sends its answer a byte every
/// 200 ms, headers first (40 s in all): a server that keeps any idle timeout at bay.
async fn trickling_api() -> Hostile {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let users: Vec<String> = (1..=3)
        .map(|i| hostile::user("c1", &format!("u{i}"), "2026-11-02T10:00:00.000Z"))
        .collect();
    let campaigns = hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1);
    let users = Arc::new((campaigns, hostile::page("users", &users, 3, 1)));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let users = users.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    let body: &[u8] = if target.starts_with("/campaigns") {
                        &users.0
                    } else if target.starts_with("/attributed-users") {
                        &users.1
                    } else {
                        FOUND.as_bytes()
                    };
                    let mut answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    answer.extend_from_slice(body);
                    if !target.starts_with("/get-attribution-result") {
                        if stream.write_all(&answer).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    for byte in answer {
                        if stream.write_all(&[byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            });
        }
    });
    Hostile {
        url,
        requests: Arc::default(),
    }
}
