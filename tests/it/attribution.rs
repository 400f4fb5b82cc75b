//! Attribution look-ups (`sync --attribution-details`) against the simulator, or a server that
//! answers as the test says, and a fresh Postgres per test.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::hostile::{self, Reply};
use crate::common::*;
use linkrunner_sim::{Faults, SimConfig};
use linkrunner_sync::config::{LookupSettings, SyncConfig};
use linkrunner_sync::error::Failure;
use linkrunner_sync::model::lookup::LookupSource;
use linkrunner_sync::model::run::Outcome;
use linkrunner_sync::sync;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

fn with_lookups(config: SyncConfig, sources: &[&str], max: u64) -> SyncConfig {
    SyncConfig {
        lookups: Some(LookupSettings {
            sources: sources
                .iter()
                .map(|s| LookupSource::parse(s).unwrap())
                .collect(),
            max,
        }),
        ..config
    }
}

/// The ids a full sync of `rows` makes due, worked out here from the simulator's rows: each
/// user id, and for rows without one the GAID or IDFA of their device.
fn expected_ids(rows: &[Value]) -> BTreeSet<(String, String)> {
    let mut ids = BTreeSet::new();
    for row in rows {
        match row["user_data"]["id"].as_str().filter(|id| !id.is_empty()) {
            Some(id) => {
                ids.insert(("user_id".to_owned(), id.to_owned()));
            }
            None => {
                let device = &row["user_data"]["device_data"];
                for key in ["gaid", "idfa"] {
                    if let Some(v) = device[key].as_str() {
                        if !v.is_empty() && v != "00000000-0000-0000-0000-000000000000" {
                            ids.insert(("device_identifier".to_owned(), v.to_owned()));
                        }
                    }
                }
            }
        }
    }
    ids
}

async fn results(pool: &PgPool) -> BTreeMap<(String, String), (Option<bool>, Option<String>)> {
    sqlx::query(
        "SELECT lookup_kind, lookup_value, found, display_id FROM linkrunner.attribution_results",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            (r.get("lookup_kind"), r.get("lookup_value")),
            (r.get("found"), r.get("display_id")),
        )
    })
    .collect()
}

#[sqlx::test]
async fn each_id_is_looked_up_once_and_a_second_run_asks_nothing(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(11)).await;
    let config = with_lookups(sync_config(&server, "UTC"), &[], 1_000_000);

    let first = sync::run(&config, &pool).await.unwrap();
    assert_eq!(first.outcome, Outcome::Success);
    let rows = sim.all_attributed_users();
    let expected = expected_ids(&rows);
    assert!(expected.len() > 100, "the data set has users to look up");
    let stored = results(&pool).await;
    assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let t = &first.totals;
    assert_eq!(t.lookups.made, expected.len() as u64);
    assert_eq!(t.lookups.found + t.lookups.not_found, t.lookups.made);
    assert_eq!(t.lookups.failed, 0);

    // Each user id's answer is its latest attribution (where no other row ties with it).
    let mut latest: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for row in &rows {
        if let Some(id) = row["user_data"]["id"].as_str() {
            let at = row["attributed_at"].as_str().unwrap();
            let campaign = row["campaign_display_id"].as_str().unwrap();
            latest.entry(id).or_default().push((at, campaign));
        }
    }
    let mut checked = 0;
    for (id, mut seen) in latest {
        seen.sort();
        let (at, campaign) = seen[seen.len() - 1];
        if seen.len() > 1 && seen[seen.len() - 2].0 == at {
            continue;
        }
        let (found, display_id) = &stored[&("user_id".to_owned(), id.to_owned())];
        assert_eq!(*found, Some(true), "{id}");
        assert_eq!(display_id.as_deref(), Some(campaign), "{id}");
        checked += 1;
    }
    assert!(checked > 100);

    // The ledger counts them as the report does.
    let ledger: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT lookups, lookups_found, lookups_not_found, lookups_failed
         FROM linkrunner.sync_runs WHERE run_id = $1",
    )
    .bind(first.run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        ledger,
        (
            t.lookups.made as i64,
            t.lookups.found as i64,
            t.lookups.not_found as i64,
            0
        )
    );

    let second = sync::run(&config, &pool).await.unwrap();
    assert_eq!(second.totals.lookups.made, 0);
}

#[sqlx::test]
async fn a_new_attribution_row_makes_its_user_due_again(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(12)).await;
    let config = with_lookups(sync_config(&server, "UTC"), &[], 1_000_000);
    sync::run(&config, &pool).await.unwrap();

    // A user signs up again from another campaign's link: a reattribution.
    let stored = results(&pool).await;
    let ((_, user), (_, before)) = stored
        .iter()
        .find(|((kind, _), (found, _))| kind == "user_id" && *found == Some(true))
        .unwrap();
    let other = sim
        .campaigns()
        .into_iter()
        .find(|c| c["display_id"].as_str() != before.as_deref())
        .unwrap();
    signup(&server, &other, "install-reattributed", user).await;

    let second = sync::run(&config, &pool).await.unwrap();
    assert_eq!(second.totals.lookups.made, 1, "only the reattributed user");
    let after = results(&pool).await;
    let (found, display_id) = &after[&("user_id".to_owned(), user.clone())];
    assert_eq!(*found, Some(true));
    assert_eq!(display_id.as_deref(), other["display_id"].as_str());
    let changed: bool = sqlx::query_scalar(
        "SELECT changed_at > first_checked_at FROM linkrunner.attribution_results
         WHERE lookup_kind = 'user_id' AND lookup_value = $1",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(changed, "changed_at moves with the answer");
    assert_eq!(
        sync::run(&config, &pool).await.unwrap().totals.lookups.made,
        0
    );
}

async fn misses(pool: &PgPool, id: &str) -> (i32, Option<bool>) {
    sqlx::query_as(
        "SELECT misses, found FROM linkrunner.attribution_results
         WHERE lookup_kind = 'user_id' AND lookup_value = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Moves the id's last look-up back in time.
async fn age(pool: &PgPool, id: &str, interval: &str) {
    sqlx::query(
        "UPDATE linkrunner.attribution_results
         SET checked_at = checked_at - $2::interval, retry_at = retry_at - $2::interval
         WHERE lookup_kind = 'user_id' AND lookup_value = $1",
    )
    .bind(id)
    .bind(interval)
    .execute(pool)
    .await
    .unwrap();
}

async fn lookups(config: &SyncConfig, pool: &PgPool) -> u64 {
    sync::run(config, pool).await.unwrap().totals.lookups.made
}

#[sqlx::test]
async fn an_unknown_id_is_asked_again_after_growing_waits_then_left_alone(pool: PgPool) {
    let (_sim, server) = start(SimConfig::small(13)).await;
    sqlx::raw_sql("CREATE SCHEMA app; CREATE TABLE app.users (id text); INSERT INTO app.users VALUES ('ghost-1'), (NULL), ('')")
        .execute(&pool)
        .await
        .unwrap();
    let config = with_lookups(sync_config(&server, "UTC"), &["app.users.id"], 1_000_000);
    sync::run(&config, &pool).await.unwrap();
    assert_eq!(misses(&pool, "ghost-1").await, (1, Some(false)), "a 204");

    // Not before its wait is over; then once per wait, each longer than the one before.
    let waits = ["1 hour", "6 hours", "1 day", "3 days", "7 days"];
    for (i, wait) in waits.iter().enumerate() {
        age(&pool, "ghost-1", &format!("{wait} - 1 minute")).await;
        assert_eq!(lookups(&config, &pool).await, 0, "before {wait}");
        age(&pool, "ghost-1", "2 minutes").await;
        assert_eq!(lookups(&config, &pool).await, 1, "after {wait}");
        assert_eq!(misses(&pool, "ghost-1").await, (i as i32 + 2, Some(false)));
    }
    // Then left alone.
    age(&pool, "ghost-1", "365 days").await;
    assert_eq!(lookups(&config, &pool).await, 0);
}

#[sqlx::test]
async fn a_budget_bounds_each_run_and_the_rest_wait_oldest_first(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(14)).await;
    sqlx::raw_sql("CREATE SCHEMA app; CREATE TABLE app.users (id int8); INSERT INTO app.users VALUES (7), (8)")
        .execute(&pool)
        .await
        .unwrap();
    let all = expected_ids(&sim.all_attributed_users()).len() as u64 + 2;
    // The users are stored first; the app's ids then have no attribution older than theirs.
    sync::run(&sync_config(&server, "UTC"), &pool)
        .await
        .unwrap();
    let config = with_lookups(sync_config(&server, "UTC"), &["app.users.id"], 100);
    let mut runs = 0;
    let mut done = 0;
    loop {
        let made = sync::run(&config, &pool).await.unwrap().totals.lookups.made;
        assert!(made <= 100);
        done += made;
        runs += 1;
        // The budget's runs, one to find none left, and one to spare: never more.
        assert!(
            runs <= all.div_ceil(100) + 2,
            "run {runs} still looked up {made}"
        );
        // Ids attributed are older than the app's own ids with no attribution at all.
        let app_done = count(
            &pool,
            "SELECT count(*) FROM linkrunner.attribution_results WHERE lookup_value IN ('7', '8')",
        )
        .await;
        if done < all - 2 {
            assert_eq!(app_done, 0, "run {runs}: the app's ids wait for older ones");
        }
        if made == 0 {
            break;
        }
    }
    assert_eq!(done, all);
    assert_eq!(runs, all.div_ceil(100) + 1);
}

#[sqlx::test]
async fn lookup_sources_are_checked_before_any_request(_: PgPoolOptions, db: PgConnectOptions) {
    let (sim, server) = start(SimConfig::small(15)).await;
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    sqlx::raw_sql(
        r#"CREATE SCHEMA "Odd ""Schema"""; CREATE TABLE "Odd ""Schema"""."users; drop table x" ("i d" text);
           INSERT INTO "Odd ""Schema"""."users; drop table x" VALUES ('ghost-2')"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = database_url(&db);
    for (source, message) in [
        ("app.users.id", "there is no table or view app.users"),
        ("Odd \"Schema\".users; drop table x.id", "has no column id"),
    ] {
        let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
        cmd.args(["--attribution-details", "--lookup-from", source]);
        let out = output(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert_eq!(sim.stats().requests, 0, "no request before the check");

    // Names are only ever names, however they read.
    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.args([
        "--attribution-details",
        "--lookup-from",
        "Odd \"Schema\".users; drop table x.i d",
    ]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(misses(&pool, "ghost-2").await, (1, Some(false)));

    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.args(["--lookup-from", "app.users.id"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--lookup-from needs --attribution-details")
    );
}

#[sqlx::test]
async fn faults_are_retried_and_the_dry_run_counts_what_is_due(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let faults = Faults {
        error_rate: 0.1,
        truncate_rate: 0.05,
        html_rate: 0.05,
        reset_rate: 0.05,
        ..Faults::default()
    };
    let (sim, server) = start(SimConfig {
        faults,
        ..SimConfig::small(16)
    })
    .await;
    let url = database_url(&db);
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let mut sync = sync_command(&url, &server.base_url(), "sim-key");
    sync.args(["--max-retries", "20", "--since", "2026-01-01"]);
    let out = output(sync).await;
    assert!(out.status.success(), "{out:?}");

    let due = expected_ids(&sim.all_attributed_users()).len();
    let mut dry = sync_command(&url, &server.base_url(), "sim-key");
    dry.args(["--attribution-details", "--max-lookups", "50", "--dry-run"]);
    let out = output(dry).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{due} attribution look-ups due, 50 this run")),
        "{stdout}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attribution_results").await,
        0
    );

    let mut run = sync_command(&url, &server.base_url(), "sim-key");
    run.args([
        "--attribution-details",
        "--max-lookups",
        "100000",
        "--max-retries",
        "20",
    ]);
    let out = output(run).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("attribution look-ups: {due} (")),
        "{stdout}"
    );
    assert!(stdout.contains(" 0 failed)"), "{stdout}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.attribution_results WHERE found IS NOT NULL"
        )
        .await,
        due as i64
    );
    assert!(sim.stats().server_errors + sim.stats().truncated + sim.stats().html > 0);
}

/// A server with one campaign of three users, whose look-ups answer as `lookup` says.
async fn lookup_api(lookup: impl Fn(&str) -> Reply + Send + Sync + 'static) -> hostile::Hostile {
    lookup_api_of(3, lookup).await
}

/// A server with one campaign of `n` users (u1, u2, ...), whose look-ups answer as `lookup`
/// says.
async fn lookup_api_of(
    n: usize,
    lookup: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> hostile::Hostile {
    let users: Vec<String> = (1..=n)
        .map(|i| hostile::user("c1", &format!("u{i}"), "2026-11-02T10:00:00.000Z"))
        .collect();
    hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        "/attributed-users" => {
            Reply::json(200, hostile::page("users", &users, users.len() as u64, 1))
        }
        "/get-attribution-result" => lookup(&req.query("user_id").unwrap_or_default()),
        _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
    })
    .await
}

const FOUND: &str = r#"{"msg":"ok","status":200,"data":{"campaign_name":"One","display_id":"c1","ad_network":"META","attribution_type":"INORGANIC","keyword_id":"","new_key":1}}"#;

fn hostile_config(api: &hostile::Hostile) -> SyncConfig {
    let mut config = with_lookups(sync_config_for(&api.url), &[], 1_000);
    config.api.max_retries = 2;
    config.since = Some("2026-11-01T00:00:00Z".parse().unwrap());
    config
}

/// Value, found, error, keyword_id and raw of a stored answer.
type Kept = (
    String,
    Option<bool>,
    Option<String>,
    Option<String>,
    Option<Value>,
);

#[sqlx::test]
async fn an_answer_that_cannot_be_used_is_kept_with_its_reason_and_the_rest_go_on(pool: PgPool) {
    let api = lookup_api(|user| match user {
        "u1" => Reply::json(200, FOUND),
        "u2" => Reply::json(400, r#"{"msg":"Invalid user id.","status":400}"#),
        _ => Reply::json(200, r#"{"msg":"ok","data":{"campaign_na"#),
    })
    .await;
    let report = sync::run(&hostile_config(&api), &pool).await.unwrap();
    let t = &report.totals;
    assert_eq!(
        (t.lookups.made, t.lookups.found, t.lookups.failed),
        (3, 1, 2)
    );
    let rows: Vec<Kept> = sqlx::query_as(
        "SELECT lookup_value, found, error, keyword_id, raw FROM linkrunner.attribution_results
         ORDER BY lookup_value",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows[0].1, Some(true));
    assert_eq!(rows[0].3, None, "an empty keyword is none");
    assert_eq!(
        rows[0].4.as_ref().unwrap()["data"]["new_key"],
        1,
        "unknown keys are kept"
    );
    assert_eq!(rows[1].1, None);
    assert!(
        rows[1].2.as_deref().unwrap().contains("Invalid user id."),
        "{rows:?}"
    );
    assert!(
        rows[2].2.as_deref().unwrap().contains("unreadable"),
        "{rows:?}"
    );
    // The garbled answer was asked for again before it was kept.
    let asked = api
        .requests()
        .iter()
        .filter(|r| r.query("user_id").as_deref() == Some("u3"))
        .count();
    assert_eq!(asked, 3);
    // Kept answers wait like a 204 before they are asked again.
    assert_eq!(
        sync::run(&hostile_config(&api), &pool)
            .await
            .unwrap()
            .totals
            .lookups
            .made,
        0
    );
}

#[sqlx::test]
async fn rate_limits_and_server_errors_are_retried(pool: PgPool) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let api = lookup_api(
        move |_| match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::Body {
                status: 429,
                headers: vec![("retry-after".into(), "0".into())],
                body: b"{}".to_vec(),
            },
            1 => Reply::json(503, "{}"),
            _ => Reply::json(200, FOUND),
        },
    )
    .await;
    let report = sync::run(&hostile_config(&api), &pool).await.unwrap();
    assert_eq!(
        (report.totals.lookups.made, report.totals.lookups.found),
        (3, 3)
    );
}

#[sqlx::test]
async fn a_refused_key_stops_the_run(pool: PgPool) {
    let refused = lookup_api(|_| Reply::json(401, r#"{"msg":"Unauthorized access."}"#)).await;
    let err = sync::run(&hostile_config(&refused), &pool)
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Auth(_)), "{err:?}");
}

#[sqlx::test]
async fn an_api_that_keeps_failing_ends_the_look_ups_not_the_run(pool: PgPool) {
    let api = lookup_api_of(100, |_| Reply::json(503, "{}")).await;
    let mut config = hostile_config(&api);
    config.api.max_retries = 0;
    let report = sync::run(&config, &pool).await.unwrap();
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.totals.users.rows_inserted, 100);
    let t = &report.totals;
    assert_eq!((t.lookups.made, t.lookups.failed), (32, 32), "{t:?}");
    // Nothing is recorded for them: they are due again on the next run.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attribution_results").await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn before_the_schema_exists_the_dry_run_says_what_the_first_run_will_do(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (_sim, server) = start(SimConfig::small(17)).await;
    let mut dry = sync_command(&database_url(&db), &server.base_url(), "sim-key");
    dry.args(["--attribution-details", "--dry-run"]);
    let out = output(dry).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("the run creates linkrunner.attribution_results, then looks up every id"),
        "{stdout}"
    );
    let pool = PgPoolOptions::new().connect_with(db).await.unwrap();
    let schema: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('linkrunner.attribution_results')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(schema, None, "a dry run creates nothing");
}

#[sqlx::test]
async fn a_key_echoed_in_any_encoding_is_masked_in_the_results_and_the_log(pool: PgPool) {
    let key = "lr_live-k.e~y/+\u{e9}-canary";
    // The key percent-encoded in upper and lower case hex, partly and wholly, and JSON-escaped.
    let spellings = [
        "lr%5Flive-k.e~y/+%C3%A9-canary".to_owned(),
        "lr%5flive%2Dk%2ee%7Ey%2f%2b%c3%a9-canary".to_owned(),
        url::form_urlencoded::byte_serialize(key.as_bytes()).collect(),
        r"lr\u005Flive-k.e~y\/+\u00e9-canary".to_owned(),
    ];
    let echoes: Vec<String> = spellings
        .iter()
        .map(|s| format!("the key {s} is not valid here"))
        .collect();
    let api = lookup_api_of(4, move |user| {
        let n: usize = user.trim_start_matches('u').parse().unwrap();
        let echo = &echoes[n - 1];
        if n % 2 == 1 {
            Reply::json(400, serde_json::json!({ "msg": echo }).to_string())
        } else {
            Reply::Body {
                status: 400,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: echo.clone().into_bytes(),
            }
        }
    })
    .await;
    for format in ["json", "text"] {
        let mut cmd = sync_command(&database_url(&pool.connect_options()), &api.url, key);
        cmd.args(["--attribution-details", "--since", "2026-11-01", "--rescan"])
            .args(["--log-format", format])
            .env("RUST_LOG", "debug");
        sqlx::query("DELETE FROM linkrunner.attribution_results")
            .execute(&pool)
            .await
            .ok();
        let out = output(cmd).await;
        assert!(out.status.success(), "{out:?}");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!printed.contains("canary"), "{printed}");
        let errors: Vec<String> =
            sqlx::query_scalar("SELECT error FROM linkrunner.attribution_results ORDER BY 1")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(errors.len(), 4, "{printed}");
        for error in &errors {
            assert!(!error.contains("canary"), "{errors:?}");
            assert!(
                error.contains("the key [redacted] is not valid"),
                "{errors:?}"
            );
        }
    }
}
