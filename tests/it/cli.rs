//! The binary as cron runs it: exit codes, one-line errors, kills mid-run.

use std::process::{Command, Output};

use crate::common::*;
use linkrunner_sim::SimConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const BIN: &str = env!("CARGO_BIN_EXE_linkrunner-sync");

/// The last line of stderr, which carries the error.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().last().unwrap_or_default().to_string()
}

#[sqlx::test]
async fn a_rejected_key_stops_the_run_with_exit_code_3(_: PgPoolOptions, db: PgConnectOptions) {
    let (_sim, server) = start(SimConfig::small(1)).await;
    let canary = "canary-key-9f8e7d6c5b";
    let out = output(sync_command(&database_url(&db), &server.base_url(), canary)).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("rejected the API key"), "{line}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(canary), "the key leaked: {all}");
}

#[sqlx::test]
async fn bad_input_gets_one_line_and_exit_code_2(_: PgPoolOptions, db: PgConnectOptions) {
    let url = database_url(&db);
    for (args, expected) in [
        (vec!["--timezone", "Mars/Olympus"], "Mars/Olympus"),
        (vec!["--since", "last tuesday"], "--since"),
        (
            vec!["--since", "2026-02-01", "--until", "2026-01-01"],
            "--until must be after --since",
        ),
        (vec!["--window", "0h"], "--window"),
        (vec!["--lookback", "soon"], "--lookback"),
        (
            vec!["--attribution-details", "--max-lookups", "0"],
            "--max-lookups",
        ),
        (
            vec!["--attribution-details", "--lookup-from", "users.id"],
            "schema.table.column",
        ),
    ] {
        let mut cmd = sync_command(&url, "http://127.0.0.1:9/api/v1", "cli-key");
        cmd.args(&args);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_one_line_and_exit_code_1() {
    let password = "canary-password-1a2b3c";
    let url = format!("postgres://someone:{password}@127.0.0.1:1/warehouse");
    let out = output(sync_command(&url, "http://127.0.0.1:9/api/v1", "cli-key")).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect to Postgres"), "{stderr}");
    assert!(!stderr.contains(password));
}

#[sqlx::test]
async fn a_second_run_while_one_holds_the_lock_exits_5(opts: PgPoolOptions, db: PgConnectOptions) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let (_sim, server) = start(SimConfig::small(2)).await;
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(119238819409507)")
        .execute(&mut *holder)
        .await
        .unwrap();
    let out = output(sync_command(
        &database_url(&db),
        &server.base_url(),
        "sim-key",
    ))
    .await;
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(error_line(&out).contains("holds the lock"));
}

#[sqlx::test]
async fn status_shows_checkpoints_and_runs(_: PgPoolOptions, db: PgConnectOptions) {
    let (sim, server) = start(SimConfig::small(4)).await;
    let url = database_url(&db);
    let out = output(sync_command(&url, &server.base_url(), "sim-key")).await;
    assert!(out.status.success(), "{out:?}");
    let mut cmd = Command::new(BIN);
    cmd.args(["status", "--runs", "1"])
        .env("DATABASE_URL", &url);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for campaign in sim.campaigns() {
        assert!(
            text.contains(campaign["display_id"].as_str().unwrap()),
            "{text}"
        );
    }
    assert!(text.contains("success"), "{text}");

    // As JSON, and as a check: nothing is behind an hour, everything is behind a second later.
    let mut cmd = Command::new(BIN);
    cmd.args(["status", "--format", "json"])
        .env("DATABASE_URL", &url);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["campaigns"].as_array().unwrap().len(),
        sim.campaigns().len()
    );
    assert_eq!(json["stale"], 0);
    assert_eq!(json["runs"][0]["outcome"], "success");
    // Once the last sync is more than a second old, every campaign is behind.
    let limit = std::time::Duration::from_secs(10);
    let out = wait_for("status reporting the campaigns stale", limit, || async {
        let mut cmd = Command::new(BIN);
        cmd.args(["status", "--max-lag", "1s"])
            .env("DATABASE_URL", &url);
        let out = output(cmd).await;
        (out.status.code() != Some(0)).then_some(out)
    })
    .await;
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("STALE"));
}

#[sqlx::test]
async fn dry_run_prints_the_plan_and_writes_nothing(opts: PgPoolOptions, db: PgConnectOptions) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let (sim, server) = start(SimConfig::small(6)).await;
    let url = database_url(&db);
    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.arg("--dry-run");
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let campaigns = sim.campaigns().len();
    assert!(
        text.contains(&format!("{campaigns} of {campaigns} campaigns to read")),
        "{text}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.campaigns").await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await,
        0
    );

    // After a sync nothing has changed, so the plan skips every campaign but the empty ones:
    // a counter at 0 beside no rows has proved nothing.
    assert!(output(sync_command(&url, &server.base_url(), "sim-key"))
        .await
        .status
        .success());
    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.arg("--dry-run");
    let text = String::from_utf8_lossy(&output(cmd).await.stdout).to_string();
    let empty = sim.counters().iter().filter(|c| c.rows == 0).count();
    assert!(
        text.contains(&format!("{empty} of {campaigns} campaigns to read")),
        "{text}"
    );
    let because = |why: &str| text.lines().filter(|l| l.contains(why)).count();
    assert_eq!(
        (because(" no evidence yet "), because(" skip")),
        (empty, campaigns - empty),
        "{text}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await,
        1
    );
}

#[sqlx::test]
async fn metrics_are_written_for_the_textfile_collector_and_pushed(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    use axum::routing::put;
    use std::sync::{Arc, Mutex};

    let (sim, server) = start(SimConfig::small(8)).await;
    // A stand-in Pushgateway that keeps what it was sent.
    let pushed = Arc::new(Mutex::new(String::new()));
    let keep = pushed.clone();
    let gateway = axum::Router::new().route(
        "/metrics/job/linkrunner_sync/schema/app_two",
        put(move |body: String| async move {
            *keep.lock().unwrap() = body;
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway).await });

    let file = std::env::temp_dir().join(format!("linkrunner-sync-{}.prom", std::process::id()));
    let mut cmd = sync_command(&database_url(&db), &server.base_url(), "sim-key");
    cmd.arg("--metrics-file").arg(&file).args([
        "--pushgateway",
        &gateway_url,
        "--schema",
        "app_two",
    ]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let rows = sim.all_attributed_users().len();
    assert!(
        text.contains(&format!(
            "linkrunner_sync_last_run_rows_inserted{{schema=\"app_two\"}} {rows}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("linkrunner_sync_last_run_exit_code{schema=\"app_two\"} 0\n"),
        "{text}"
    );
    assert_eq!(*pushed.lock().unwrap(), text);
}

/// A log written to a file by `--log-format text` (cron's `>> sync.log 2>&1`) holds no colour
/// codes.
#[sqlx::test]
async fn text_logs_into_a_file_are_plain(_: PgPoolOptions, db: PgConnectOptions) {
    let (_sim, server) = start(SimConfig::small(3)).await;
    let mut cmd = sync_command(&database_url(&db), &server.base_url(), "sim-key");
    cmd.args(["--log-format", "text"]).env("RUST_LOG", "info");
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}
