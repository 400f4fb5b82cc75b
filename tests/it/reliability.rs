//! The reliability suite: kills, signals, dropped database connections, leaked secrets.
//! Each test prints a `reliability:` line with its figures (see them with --nocapture).
//! LINKRUNNER_LONG_TESTS=1 runs the long mode (more kills).

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use linkrunner_sim::SimConfig;
use linkrunner_sync::output::secrets;
use linkrunner_sync::sync;
use rand::{Rng, SeedableRng};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Flags, environment overrides, and the text the one-line error must hold.
type BadInput<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

fn long_mode() -> bool {
    std::env::var_os("LINKRUNNER_LONG_TESTS").is_some()
}

#[sqlx::test]
async fn sigkill_at_random_moments_loses_and_doubles_nothing(
    opts: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let mut sim_config = SimConfig::small(21);
    sim_config.users = 1500;
    sim_config.faults.latency = Duration::from_millis(8);
    let (sim, server) = start(sim_config).await;
    let url = database_url(&db);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let target = if long_mode() { 150 } else { 30 };
    let (mut kills, mut runs) = (0, 0);
    let mut previous = checkpoints(&pool).await;
    while kills < target && runs < target * 3 {
        runs += 1;
        let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
        cmd.args([
            "--timezone",
            "America/New_York",
            "--page-size",
            "5",
            "--pages-per-scan",
            "2",
        ]);
        // Every other run is a full backfill, so there is always work to interrupt.
        if runs % 2 == 0 {
            cmd.args(["--since", "2026-01-01", "--rescan"]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..700))).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Checkpoints only move forward, and never claim a row that is not stored.
        let now = checkpoints(&pool).await;
        for (id, (from, until)) in &previous {
            let (from2, until2) = now[id];
            assert!(from2 <= *from && until2 >= *until, "{id} moved back");
        }
        previous = now;
        assert_checkpoints_truthful(&pool, &sim).await;
    }
    assert!(
        kills >= target,
        "only {kills} of {runs} runs were killed mid-way"
    );
    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.args([
        "--timezone",
        "America/New_York",
        "--page-size",
        "5",
        "--pages-per-scan",
        "2",
    ]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    assert_exact(&pool, &sim).await;
    let rows = sim.all_attributed_users().len();
    eprintln!("reliability: sigkill: {kills} kills in {runs} runs, {rows} rows compared, 0 lost, 0 doubled");
}

#[sqlx::test]
async fn sigterm_stops_at_a_safe_point_and_the_next_run_completes(
    opts: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let mut sim_config = SimConfig::small(23);
    sim_config.users = 1500;
    sim_config.faults.latency = Duration::from_millis(10);
    let (sim, server) = start(sim_config).await;
    let url = database_url(&db);
    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.args(["--page-size", "5", "--pages-per-scan", "2"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Mid-run: some ranges read, most not.
    wait_for(
        "the run reading ranges",
        Duration::from_secs(30),
        || async { (sim.stats().attributed_users_requests >= 20).then_some(()) },
    )
    .await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM linkrunner.sync_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outcome, "interrupted");
    assert_checkpoints_truthful(&pool, &sim).await;

    let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
    cmd.args(["--page-size", "5", "--pages-per-scan", "2"]);
    assert!(output(cmd).await.status.success());
    assert_exact(&pool, &sim).await;
    eprintln!("reliability: sigterm: clean stop, ledger 'interrupted', next run exact");
}

#[sqlx::test]
async fn dropped_database_connections_are_survived(pool: PgPool) {
    let mut sim_config = SimConfig::small(25);
    sim_config.users = 1500;
    sim_config.faults.latency = Duration::from_millis(5);
    let (sim, server) = start(sim_config).await;
    let mut config = sync_config(&server, "UTC");
    config.page_size = 10;
    config.pages_per_scan = 2;

    // Another session terminates every connection of this database, over and over.
    let killer_pool = pool.clone();
    let killer = tokio::spawn(async move {
        let mut dropped = 0i64;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let n: i64 = sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&killer_pool)
            .await
            .unwrap_or(0);
            dropped += n;
        }
        dropped
    });
    let first = sync::run(&config, &pool).await;
    let dropped = killer.await.unwrap();
    assert!(dropped > 0, "no connection was dropped");
    // Either the run rode it out, or it failed as transient having committed whole ranges only.
    match &first {
        Ok(_) | Err(linkrunner_sync::error::Failure::Transient(_)) => {}
        Err(other) => panic!("unexpected failure: {other}"),
    }
    assert_checkpoints_truthful(&pool, &sim).await;
    sync::run(&config, &pool).await.unwrap();
    assert_exact(&pool, &sim).await;
    eprintln!(
        "reliability: database: {dropped} connections dropped mid-run, first run {}, second run exact",
        if first.is_ok() { "succeeded" } else { "failed as transient" }
    );
}

#[sqlx::test]
async fn secrets_never_reach_any_output(_: PgPoolOptions, db: PgConnectOptions) {
    let key = "canary-key-7Hq2ZxP4";
    let password = "canary-pw-3Kd9Lm";
    let mut sim_config = SimConfig::small(27);
    sim_config.api_key = key.to_string();
    let (_sim, server) = start(sim_config.clone()).await;
    let mut slow_config = sim_config;
    slow_config.faults.latency = Duration::from_millis(400);
    let (_slow, slow_server) = start(slow_config).await;
    // Trust authentication ignores the password, so the URL with it still connects.
    let mut url = url::Url::parse(&database_url(&db)).unwrap();
    url.set_username("postgres").unwrap();
    url.set_password(Some(password)).unwrap();
    let url = url.to_string();

    let mut cases: Vec<(&str, std::process::Command)> = Vec::new();
    let mut with =
        |name: &'static str, base: &str, key: &str, args: &[&str], env: &[(&str, &str)]| {
            let mut cmd = sync_command(&url, base, key);
            cmd.args(args);
            for (k, v) in env {
                cmd.env(k, v);
            }
            cases.push((name, cmd));
        };
    let base = server.base_url();
    with(
        "success with trace logging",
        &base,
        key,
        &[],
        &[("RUST_LOG", "trace")],
    );
    with(
        "json debug logging",
        &base,
        key,
        &["--log-format", "json"],
        &[("RUST_LOG", "debug")],
    );
    with(
        "401",
        &base,
        &format!("{key}-wrong"),
        &[],
        &[("RUST_LOG", "trace")],
    );
    with(
        "timeout",
        &slow_server.base_url(),
        key,
        &["--timeout", "100ms", "--max-retries", "1"],
        &[("RUST_LOG", "debug")],
    );
    with(
        "bad timezone",
        &base,
        key,
        &["--timezone", "Nowhere/Land"],
        &[],
    );
    with(
        "unreachable API",
        "http://127.0.0.1:9/api/v1",
        key,
        &["--max-retries", "1"],
        &[("RUST_LOG", "debug")],
    );
    with("--help", &base, key, &["--help"], &[]);
    let mut unreachable_db = sync_command(
        &format!("postgres://postgres:{password}@127.0.0.1:1/x"),
        &base,
        key,
    );
    unreachable_db.env("RUST_LOG", "trace");
    cases.push(("unreachable database", unreachable_db));

    let tried = cases.len();
    let mut found = 0;
    for (name, cmd) in cases {
        let out = output(cmd).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.is_empty(), "{name}: printed nothing");
        for secret in [key, password] {
            if text.contains(secret) {
                found += 1;
                eprintln!("{name}: leaked {secret}:\n{text}");
            }
        }
    }
    assert_eq!(found, 0, "secrets found in output");
    eprintln!("reliability: secrets: {tried} error and logging paths run, {found} secrets found in output");
}

const PANIC_KEY: &str = "canary-key-Vb8Rt2Wq";
const PANIC_PASSWORD: &str = "canary-pw-Jn4Xs6";

/// Run by `a_panic_prints_one_masked_line`, in a process of its own (a panic hook is the whole
/// process's): the job's hook, installed as `main` installs it, meets a panic holding secrets.
#[test]
#[ignore = "run in a process of its own by a_panic_prints_one_masked_line"]
#[should_panic]
fn panicking_with_secrets_in_the_message() {
    secrets::register(PANIC_KEY);
    secrets::register_database_url(&format!("postgres://u:{PANIC_PASSWORD}@127.0.0.1/x"));
    secrets::install_panic_hook();
    panic!("deliberate test panic holding {PANIC_KEY} and {PANIC_PASSWORD}");
}

#[test]
fn a_panic_prints_one_masked_line() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "reliability::panicking_with_secrets_in_the_message",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // The test in the child ran, and panicked as it should.
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("linkrunner-sync: internal error (please report): ")
            && lines[0].contains("deliberate test panic holding [redacted] and [redacted]"),
        "{stderr}"
    );
    for secret in [PANIC_KEY, PANIC_PASSWORD] {
        assert!(
            !format!("{stdout}{stderr}").contains(secret),
            "{secret} leaked"
        );
    }
}

#[sqlx::test]
async fn bad_configuration_is_refused_before_anything_changes(pool: PgPool) {
    let (_sim, server) = start(SimConfig::small(29)).await;
    let db_name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let mut db_url = url::Url::parse(&base).unwrap();
    db_url.set_path(&db_name);
    let good = db_url.to_string();
    // A login that may connect but not create anything.
    let role = format!("lr_noprivs_{}", &db_name[db_name.len().saturating_sub(8)..])
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(&pool)
        .await
        .unwrap();
    let mut unprivileged = db_url.clone();
    unprivileged.set_username(&role).unwrap();
    let mut missing_db = db_url.clone();
    missing_db.set_path("no_such_database_here");

    let future = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let base_url = server.base_url();
    let cases: Vec<BadInput> = vec![
        (vec!["--timezone", "Mars/Olympus"], vec![], "Mars/Olympus"),
        (
            vec!["--since", "last tuesday"],
            vec![],
            "'last tuesday' is not a date",
        ),
        (vec!["--since", future.as_str()], vec![], "in the future"),
        (vec!["--until", future.as_str()], vec![], "in the future"),
        (
            vec!["--since", "2026-02-01", "--until", "2026-01-01"],
            vec![],
            "--until must be after --since",
        ),
        (vec!["--window", "0h"], vec![], "greater than zero"),
        (vec!["--window=-1d"], vec![], "--window"),
        (vec!["--rps", "fast"], vec![], "invalid value 'fast'"),
        (vec!["--max-retries=-1"], vec![], "--max-retries"),
        (vec!["--timeout", "0s"], vec![], "--timeout"),
        (vec!["--no-such-flag"], vec![], "unexpected argument"),
        (vec!["--window", "36h"], vec![], "whole number of days"),
        (vec!["--lookback", "soon"], vec![], "--lookback"),
        (vec!["--rps", "0"], vec![], "--rps"),
        (vec!["--rps=-5"], vec![], "--rps"),
        (vec!["--concurrency", "0"], vec![], "--concurrency"),
        (vec!["--campaign", ""], vec![], "--campaign"),
        (
            vec![
                "--since",
                "2026-03-08T02:30",
                "--timezone",
                "America/New_York",
            ],
            vec![],
            "does not exist",
        ),
        (
            vec![],
            vec![("LINKRUNNER_BASE_URL", "not a url")],
            "not a URL",
        ),
        (
            vec![],
            vec![("LINKRUNNER_BASE_URL", "ftp://example.org/x")],
            "http(s)",
        ),
        (
            vec![],
            vec![("LINKRUNNER_BASE_URL", "https://u:p@example.org/api/v1")],
            "credentials",
        ),
        (
            vec![],
            vec![("LINKRUNNER_API_KEY", "")],
            "LINKRUNNER_API_KEY",
        ),
        (
            vec![],
            vec![("DATABASE_URL", "mysql://nope")],
            "DATABASE_URL",
        ),
        (
            vec![],
            vec![("DATABASE_URL", missing_db.as_str())],
            "does not exist",
        ),
        (
            vec![],
            vec![("DATABASE_URL", unprivileged.as_str())],
            "lacks privileges",
        ),
    ];
    let tried = cases.len();
    for (args, env, expected) in cases {
        let mut cmd = bare_sync_command(&good, &base_url, "sim-key");
        cmd.args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = output(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?} {env:?}: {stderr}"
        );
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
    }
    // Nothing was written: not even the schema.
    let schema: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'linkrunner'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&pool)
        .await;
    assert!(
        schema.is_none() || count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await == 0
    );
    eprintln!("reliability: bad input: {tried} invalid inputs, each one line and exit code 2, nothing stored");
}
