//! `sync --reporting` against the simulator and a real Postgres: which days a run reads, in how
//! many requests, at what pace, how it goes on across runs, and what it does when the
//! Reporting API refuses.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::common::*;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use linkrunner_sim::{ReportingLimit, SimConfig, Simulator};
use linkrunner_sync::config::{ReportingSettings, SyncConfig};
use linkrunner_sync::model::run::RunReport;
use linkrunner_sync::sync;
use sqlx::PgPool;

const KOLKATA: Tz = chrono_tz::Asia::Kolkata;

fn today() -> NaiveDate {
    Utc::now().with_timezone(&KOLKATA).date_naive()
}

fn settings(since: NaiveDate) -> ReportingSettings {
    ReportingSettings {
        timezone: KOLKATA,
        since: Some(since),
        last: None,
        views: vec!["user_acquisition"],
        rpm: 6000.0,
        max_requests: 10_000,
        lookback_days: 7,
        refresh: chrono::Duration::hours(1),
    }
}

fn config(server: &linkrunner_sim::SimServer, reporting: ReportingSettings) -> SyncConfig {
    SyncConfig {
        reporting: Some(reporting),
        ..sync_config(server, "UTC")
    }
}

/// A simulator whose Reporting API has no limit, for the tests that are not about pacing.
async fn unlimited(seed: u64) -> (Simulator, linkrunner_sim::SimServer) {
    start(SimConfig {
        reporting_limit: None,
        ..SimConfig::small(seed)
    })
    .await
}

/// A simulator whose Reporting API lets one request through in any `window`, with
/// `Retry-After: 1`.
async fn limited(seed: u64, window: Duration) -> (Simulator, linkrunner_sim::SimServer) {
    start(SimConfig {
        reporting_limit: Some(ReportingLimit {
            requests: 1,
            window,
            retry_after_secs: 1,
        }),
        ..SimConfig::small(seed)
    })
    .await
}

async fn run(config: &SyncConfig, pool: &PgPool) -> RunReport {
    sync::run(config, pool).await.expect("the run succeeds")
}

/// Sign-ups per campaign and local day of `tz`, counted from the simulator's rows.
fn signups_by_day(sim: &Simulator, tz: Tz) -> HashMap<(String, NaiveDate), i64> {
    let mut days = HashMap::new();
    for campaign in sim.campaigns() {
        let id = campaign["display_id"].as_str().unwrap().to_string();
        for row in sim.attributed_users(&id) {
            let at: DateTime<Utc> = row["attributed_at"].as_str().unwrap().parse().unwrap();
            *days
                .entry((id.clone(), at.with_timezone(&tz).date_naive()))
                .or_insert(0) += 1;
        }
    }
    days
}

/// Each campaign's creation instant.
fn created(sim: &Simulator) -> BTreeMap<String, DateTime<Utc>> {
    sim.campaigns()
        .iter()
        .map(|c| {
            let at = c["created_at"].as_str().unwrap().parse().unwrap();
            (c["display_id"].as_str().unwrap().to_string(), at)
        })
        .collect()
}

/// The first instant after a local day of Kolkata (no DST there).
fn end_of(day: NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    KOLKATA
        .from_local_datetime(&day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Each day's state as `reporting_days` holds it: (next_page, read, settled).
async fn days(pool: &PgPool) -> BTreeMap<NaiveDate, (i32, bool, bool)> {
    let rows: Vec<(NaiveDate, i32, bool, bool)> = sqlx::query_as(
        "SELECT day, next_page, read_at IS NOT NULL, settled FROM linkrunner.reporting_days
         WHERE view = 'user_acquisition'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(d, p, r, s)| (d, (p, r, s)))
        .collect()
}

fn days_from(first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    first.iter_days().take_while(|d| *d <= last).collect()
}

#[sqlx::test]
async fn a_backfill_reads_each_day_once_and_settles_the_days_past_the_lookback(pool: PgPool) {
    let (sim, server) = unlimited(301).await;
    let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let config = config(&server, settings(first));
    let report = run(&config, &pool).await;
    assert_exact(&pool, &sim).await;

    // Eight campaigns: one page a day.
    let all = days_from(first, today());
    let r = report.totals.reporting;
    assert_eq!(
        (r.requests, r.days, r.pages),
        (all.len() as u64, all.len() as u64, all.len() as u64)
    );
    assert_eq!((r.rate_limited, r.days_left, r.unparsed), (0, 0, 0));
    assert_eq!(sim.stats().reporting_requests, all.len() as u64);
    let stored = days(&pool).await;
    assert_eq!(stored.keys().copied().collect::<Vec<_>>(), all);
    for (day, (next_page, read, settled)) in &stored {
        assert_eq!((*next_page, *read), (1, true), "{day}");
        assert_eq!(
            *settled,
            *day < today() - chrono::Duration::days(7),
            "{day}"
        );
    }

    // Every campaign's sign-ups on every day are its rows of that local day.
    let by_day = signups_by_day(&sim, KOLKATA);
    let stored: Vec<(NaiveDate, String, String)> = sqlx::query_as(
        "SELECT day, display_id, signups::text FROM linkrunner.reporting_daily
         WHERE view = 'user_acquisition'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let created = created(&sim);
    let existing: usize = all
        .iter()
        .map(|d| created.values().filter(|c| **c < end_of(*d)).count())
        .sum();
    assert_eq!(
        stored.len(),
        existing,
        "one row per campaign that existed that day"
    );
    let mut nonzero = 0;
    for (day, campaign, signups) in &stored {
        let want = by_day.get(&(campaign.clone(), *day)).copied().unwrap_or(0);
        assert_eq!(signups, &want.to_string(), "{campaign} on {day}");
        nonzero += usize::from(want > 0);
    }
    assert!(nonzero > 10, "{nonzero}");
    let verdicts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT verdict, count(*) FROM linkrunner.reporting_signup_check GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(verdicts, [("agree".to_string(), existing as i64)]);

    // Nothing is due again: recent days were read within the refresh, older ones are settled.
    let again = run(&config, &pool).await;
    assert_eq!(again.totals.reporting.requests, 0);
    assert_eq!(sim.stats().reporting_requests, all.len() as u64);
    let ledger: (i64, i64, i64) = sqlx::query_as(
        "SELECT reporting_requests, reporting_days, reporting_rate_limited FROM linkrunner.sync_runs
         WHERE run_id = $1",
    )
    .bind(report.run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ledger, (all.len() as i64, all.len() as i64, 0));
}

#[sqlx::test]
async fn late_numbers_of_recent_days_are_read_again_and_only_changed_rows_rewritten(pool: PgPool) {
    // Signups up to an hour ago, so the recent days have numbers to move.
    let (sim, server) = start(SimConfig {
        reporting_limit: None,
        start: Utc::now() - chrono::Duration::days(40),
        end: Utc::now() - chrono::Duration::hours(1),
        ..SimConfig::small(302)
    })
    .await;
    let first = today() - chrono::Duration::days(12);
    let config = config(
        &server,
        ReportingSettings {
            refresh: chrono::Duration::zero(),
            ..settings(first)
        },
    );
    run(&config, &pool).await;
    let before: HashMap<(NaiveDate, String), (String, DateTime<Utc>)> = changed_at(&pool).await;

    // Late installs and spend everywhere, and a signup today.
    sim.bump_reporting_revision();
    let campaign = sim.campaigns()[0].clone();
    let id = campaign["display_id"].as_str().unwrap().to_string();
    signup(&server, &campaign, "late-install", "late-user").await;
    let report = run(&config, &pool).await;
    assert_exact(&pool, &sim).await;

    // Today and the seven days before it are read again; the settled ones are not.
    let r = report.totals.reporting;
    assert_eq!((r.requests, r.days, r.rows_inserted), (8, 8, 0));
    assert!(r.rows_changed > 0, "{r:?}");
    let after = changed_at(&pool).await;
    let (mut changed, mut kept) = (0, 0);
    for (key, (numbers, at)) in &after {
        let (old_numbers, old_at) = &before[key];
        if key.0 < today() - chrono::Duration::days(7) {
            assert_eq!(
                (numbers, at),
                (old_numbers, old_at),
                "a settled day: {key:?}"
            );
        } else if numbers == old_numbers {
            assert_eq!(at, old_at, "an unchanged row is not rewritten: {key:?}");
            kept += 1;
        } else {
            assert!(at > old_at, "{key:?}");
            changed += 1;
        }
    }
    assert!(changed > 1, "late numbers changed: {changed}");
    assert!(kept > 0, "some recent rows did not change");
    let signups: String = sqlx::query_scalar(
        "SELECT signups::text FROM linkrunner.reporting_daily
         WHERE view = 'user_acquisition' AND display_id = $1 AND day = $2",
    )
    .bind(&id)
    .bind(today())
    .fetch_one(&pool)
    .await
    .unwrap();
    let earlier = before[&(today(), id.clone())]
        .0
        .split('/')
        .nth(2)
        .unwrap()
        .to_owned();
    let earlier: i64 = earlier.parse().unwrap();
    assert_eq!(
        signups,
        (earlier + 1).to_string(),
        "today's late signup is counted"
    );
    let verdict: String = sqlx::query_scalar(
        "SELECT verdict FROM linkrunner.reporting_signup_check
         WHERE campaign_display_id = $1 AND day = $2",
    )
    .bind(&id)
    .bind(today())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(verdict, "agree");
}

/// Every campaign row's numbers as text, and when they last changed.
async fn changed_at(pool: &PgPool) -> HashMap<(NaiveDate, String), (String, DateTime<Utc>)> {
    let rows: Vec<(NaiveDate, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT day, display_id,
                concat_ws('/', clicks, installs, signups, spend, revenue, roas, conversion),
                changed_at
         FROM linkrunner.reporting_daily",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(d, c, n, at)| ((d, c), (n, at)))
        .collect()
}

#[sqlx::test]
async fn a_day_stops_at_the_first_campaign_created_after_it_and_a_pass_goes_on_across_runs(
    pool: PgPool,
) {
    let (sim, server) = start(SimConfig {
        campaigns: 150,
        users: 1500,
        reporting_limit: None,
        ..SimConfig::small(303)
    })
    .await;
    let created = created(&sim);
    let existing = |day: NaiveDate| created.values().filter(|c| **c < end_of(day)).count();

    // Today all 150 campaigns exist: two pages, one a run.
    let one_request = ReportingSettings {
        max_requests: 1,
        ..settings(today())
    };
    let report = run(&config(&server, one_request.clone()), &pool).await;
    let r = report.totals.reporting;
    assert_eq!(
        (r.requests, r.days, r.days_left, r.rows_inserted > 0),
        (1, 0, 1, true)
    );
    assert_eq!(days(&pool).await[&today()], (2, false, false));
    let rows = count(&pool, "SELECT count(*) FROM linkrunner.reporting_daily").await;
    assert_eq!(rows, 100);
    let report = run(&config(&server, one_request), &pool).await;
    assert_eq!(
        (
            report.totals.reporting.requests,
            report.totals.reporting.days
        ),
        (1, 1)
    );
    assert_eq!(days(&pool).await[&today()], (1, true, false));
    let rows = count(&pool, "SELECT count(*) FROM linkrunner.reporting_daily").await;
    assert_eq!(rows, 150);

    // From the day the 40th campaign was created: a day costs a page per hundred campaigns
    // that existed by its end, however long the list.
    let mut order: Vec<DateTime<Utc>> = created.values().copied().collect();
    order.sort();
    let first = order[39].with_timezone(&KOLKATA).date_naive();
    let all = days_from(first, today() - chrono::Duration::days(1));
    let want: u64 = all
        .iter()
        .map(|d| existing(*d).div_ceil(100).max(1) as u64)
        .sum();
    assert!(want < 2 * all.len() as u64, "some days take one page");
    let before = sim.stats().reporting_requests;
    let report = run(&config(&server, settings(first)), &pool).await;
    assert_eq!(report.totals.reporting.requests, want);
    assert_eq!(sim.stats().reporting_requests - before, want);
    for day in all {
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM linkrunner.reporting_daily WHERE day = $1")
                .bind(day)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(rows as usize, existing(day), "{day}");
    }
}

/// The binary with reporting flags, against the simulator, at `rpm` requests a minute.
fn reporting_command(
    db_url: &str,
    server: &linkrunner_sim::SimServer,
    rpm: &str,
) -> std::process::Command {
    let mut cmd = sync_command(db_url, &server.base_url(), "sim-key");
    cmd.args(["--reporting", "--reporting-timezone", "Asia/Kolkata"]);
    cmd.args(["--reporting-rpm", rpm]);
    cmd
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[sqlx::test]
async fn the_pace_keeps_a_limit_of_a_few_a_second_and_each_run_goes_on_where_the_last_stopped(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    // A limit of one request in any 300 ms, and a pace of 200 a minute, one every 300 ms: the
    // pace is kept from each answer, so no latency brings two requests inside one window.
    let (sim, server) = limited(304, Duration::from_millis(300)).await;
    let db = database_url(&options);
    let since = (today() - chrono::Duration::days(11)).to_string();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let mut cmd = reporting_command(&db, &server, "200");
        cmd.args(["--since", &since]);
        cmd.args(["--reporting-max-requests", "5"]);
        let started = Instant::now();
        let out = output(cmd).await;
        assert!(out.status.success(), "{}", stderr(&out));
        runs.push((
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    let ledger: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT reporting_requests, reporting_rate_limited, reporting_days
         FROM linkrunner.sync_runs ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Twelve days: five, five, two, then none; each run starts where the last one stopped.
    assert_eq!(ledger, [(5, 0, 5), (5, 0, 5), (2, 0, 2), (0, 0, 0)]);
    assert_eq!(
        sim.stats().reporting_rate_limited,
        0,
        "the pace kept the limit"
    );
    assert_eq!(sim.stats().reporting_requests, 12);
    // Five requests 300 ms apart take 1.2 s at least; a run after another waits for its pace.
    assert!(runs[0].0 >= Duration::from_millis(1200), "{:?}", runs[0].0);
    assert!(runs[1].0 >= Duration::from_millis(1200), "{:?}", runs[1].0);
    assert!(
        runs[0].1.contains("7 days due wait for the next run"),
        "{}",
        runs[0].1
    );
    let stored = days(&pool).await;
    assert_eq!(stored.len(), 12);
    assert!(stored
        .values()
        .all(|(page, read, _)| (*page, *read) == (1, true)));

    let mut status = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    status.arg("status").env("DATABASE_URL", &db);
    let out = output(status).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = today() - chrono::Duration::days(11);
    assert!(
        text.contains(&format!(
            "reporting (user_acquisition, days of Asia/Kolkata): {first} to {}, 12 days read, 4 settled, 0 missing, 0 under way",
            today()
        )),
        "{text}"
    );
    assert!(
        text.contains("reporting: 5 requests 0 429s 5 days read 7 days left 0 values unparsed"),
        "{text}"
    );
}

#[sqlx::test]
async fn a_429_is_waited_out_and_counted_and_the_days_are_read_all_the_same(pool: PgPool) {
    let (sim, server) = limited(305, Duration::from_millis(500)).await;
    // Asked faster than the server allows.
    let config = config(&server, settings(today() - chrono::Duration::days(3)));
    let report = run(&config, &pool).await;
    let r = report.totals.reporting;
    assert_eq!(r.days, 4);
    assert!(r.rate_limited > 0, "{r:?}");
    assert_eq!(r.requests, 4 + r.rate_limited);
    assert_eq!(sim.stats().reporting_rate_limited, r.rate_limited);
    let ledger: i64 = sqlx::query_scalar(
        "SELECT reporting_rate_limited FROM linkrunner.sync_runs WHERE run_id = $1",
    )
    .bind(report.run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ledger as u64, r.rate_limited);
    assert_exact(&pool, &sim).await;
}

#[sqlx::test]
async fn reporting_flags_are_checked_before_any_request(
    _pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let (sim, server) = unlimited(306).await;
    let db = database_url(&options);
    for (args, says) in [
        (
            vec!["--reporting"],
            "--reporting needs --reporting-timezone",
        ),
        (
            vec!["--reporting", "--reporting-timezone", "India/Mumbai"],
            "not an IANA timezone",
        ),
        (
            vec![
                "--reporting",
                "--reporting-timezone",
                "UTC",
                "--reporting-rpm",
                "0",
            ],
            "--reporting-rpm 0 must be",
        ),
        (
            vec![
                "--reporting",
                "--reporting-timezone",
                "UTC",
                "--reporting-lookback",
                "36h",
            ],
            "whole days",
        ),
        (vec!["--reporting-retargeting"], "needs --reporting"),
        (
            vec!["--reporting-timezone", "Asia/Kolkata"],
            "--reporting-timezone (LINKRUNNER_REPORTING_TIMEZONE) needs --reporting",
        ),
    ] {
        let mut cmd = sync_command(&db, &server.base_url(), "sim-key");
        cmd.args(&args);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(sim.stats().requests, 0);
}

#[sqlx::test]
async fn a_suspended_billing_account_stops_reporting_and_the_signup_sync_goes_on(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (sim, server) = unlimited(307).await;
    sim.set_reporting_billing_suspended(true);
    let mut cmd = reporting_command(&database_url(&options), &server, "6000");
    cmd.args(["--since", &today().to_string()]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("billing account is suspended (HTTP 402)"));
    let (outcome, synced, error): (String, i32, Option<String>) = sqlx::query_as(
        "SELECT outcome, campaigns_synced, reporting_error FROM linkrunner.sync_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (outcome.as_str(), synced),
        ("success", 8),
        "the signup sync's own outcome"
    );
    assert!(error.unwrap().contains("402"));
    assert_eq!(sim.stats().reporting_requests, 1, "asked once");

    // Once the account is settled, the next run reads the day.
    sim.set_reporting_billing_suspended(false);
    let mut cmd = reporting_command(&database_url(&options), &server, "6000");
    cmd.args(["--since", &today().to_string()]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(days(&pool).await[&today()], (1, true, false));
}

#[sqlx::test]
async fn a_refused_key_stops_the_run_and_a_refused_query_fails_loudly(
    _pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    use common::hostile::{campaign, page, serve, Reply};
    for (status, code, says) in [
        (401, 3, "rejected the API key"),
        (422, 2, "HTTP 422: Invalid limit"),
    ] {
        let server = serve(move |req| {
            if req.path().ends_with("/reporting/campaigns") {
                Reply::json(status, r#"{"msg":"Invalid limit","status":422}"#)
            } else if req.path().ends_with("/campaigns") {
                Reply::json(200, page("campaigns", &[campaign("c1", "One")], 1, 1))
            } else {
                Reply::json(200, page("users", &[], 0, 1))
            }
        })
        .await;
        let mut cmd = sync_command(&database_url(&options), &server.url, "sim-key");
        cmd.args([
            "--reporting",
            "--reporting-timezone",
            "UTC",
            "--since",
            "2026-11-30",
        ]);
        cmd.args(["--reporting-rpm", "6000"]);
        let out = output(cmd).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{status}: {err}");
        assert!(err.contains(says), "{status}: {err}");
        let asked = server
            .requests()
            .iter()
            .filter(|r| r.path().ends_with("/reporting/campaigns"))
            .count();
        assert_eq!(asked, 1, "{status} is not asked again");
    }
}

#[sqlx::test]
async fn another_timezone_is_refused_until_a_rescan_reads_the_days_again_in_it(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (sim, server) = unlimited(308).await;
    let db = database_url(&options);
    let since = (today() - chrono::Duration::days(2)).to_string();
    let out = output({
        let mut cmd = reporting_command(&db, &server, "6000");
        cmd.args(["--since", &since]);
        cmd
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let asked = sim.stats().reporting_requests;

    let utc = |rescan: bool| {
        let mut cmd = sync_command(&db, &server.base_url(), "sim-key");
        cmd.args([
            "--reporting",
            "--reporting-timezone",
            "UTC",
            "--since",
            &since,
        ]);
        cmd.args(["--reporting-rpm", "6000"]);
        if rescan {
            cmd.arg("--rescan");
        }
        cmd
    };
    let out = output(utc(false)).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("were read in Asia/Kolkata, not --reporting-timezone UTC"),
        "{err}"
    );
    assert_eq!(sim.stats().reporting_requests, asked);

    let out = output(utc(true)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let zones: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT project_timezone FROM linkrunner.reporting_days")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(zones, ["UTC"]);
    // Every day begun in UTC is read in it; Kolkata's today may not have begun there yet.
    let unread: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM linkrunner.reporting_days WHERE read_at IS NULL AND day <= $1",
    )
    .bind(Utc::now().date_naive())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unread, 0);
}

#[sqlx::test]
async fn a_dry_run_shows_the_days_due_and_their_minutes_and_writes_nothing(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (sim, server) = unlimited(309).await;
    let since = today() - chrono::Duration::days(29);
    let mut cmd = reporting_command(&database_url(&options), &server, "1");
    cmd.args(["--since", &since.to_string(), "--dry-run"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "reporting: 30 days due (8 recent, 22 older) from {since} to {} in Asia/Kolkata; about 30 requests, 30 min at 1 a minute; this run makes at most 4, so about 8 runs",
            today()
        )),
        "{text}"
    );
    assert_eq!(sim.stats().reporting_requests, 0);
    for table in [
        "reporting_days",
        "reporting_daily",
        "reporting_pace",
        "sync_runs",
    ] {
        let sql = format!("SELECT count(*) FROM linkrunner.{table}");
        assert_eq!(count(&pool, &sql).await, 0, "{table}");
    }
}

#[sqlx::test]
async fn the_retargeting_view_is_read_beside_user_acquisition_only_when_asked(pool: PgPool) {
    let (_sim, server) = unlimited(310).await;
    let mut settings = settings(today() - chrono::Duration::days(1));
    settings.views.push("retargeting");
    let report = run(&config(&server, settings), &pool).await;
    assert_eq!(report.totals.reporting.days, 4, "two days of two views");
    let views: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT view, count(*), count(reinstalls) FROM linkrunner.reporting_daily
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(views.len(), 2, "{views:?}");
    assert_eq!(views[0].0, "retargeting");
    assert!(
        views[0].2 > 0,
        "retargeting rows carry reinstalls: {views:?}"
    );
    assert_eq!(views[0].1, views[1].1);
}

#[sqlx::test]
async fn reporting_goes_on_without_the_run_lock_and_the_next_run_syncs_meanwhile(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    // A limit of one request a second, and a pace of one a second: six requests take five
    // seconds.
    let (sim, server) = limited(311, Duration::from_secs(1)).await;
    let db = database_url(&options);
    let since = (today() - chrono::Duration::days(9)).to_string();
    let mut first = reporting_command(&db, &server, "60");
    first.args(["--since", &since]);
    first.args(["--reporting-max-requests", "6"]);
    let first = tokio::task::spawn_blocking(move || first.output().unwrap());
    // Its signup sync ends, and its run lock is let go, long before its reporting does.
    wait_for(
        "the first run's second reporting request",
        Duration::from_secs(20),
        || async { (sim.stats().reporting_requests >= 2).then_some(()) },
    )
    .await;
    let done = count(
        &pool,
        "SELECT count(*) FROM linkrunner.sync_runs WHERE finished_at IS NOT NULL",
    )
    .await;
    assert_eq!(done, 1, "the first run's signup sync is over");
    let mut second = reporting_command(&db, &server, "6000");
    second.args(["--since", &since]);
    let out = output(second).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !first.is_finished(),
        "the first run is still reading the Reporting API"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reporting: 0 requests"), "{text}");
    let out = first.await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ledger: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, reporting_requests FROM linkrunner.sync_runs ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        ledger,
        [("success".to_string(), 6), ("success".to_string(), 0)]
    );
    assert_eq!(sim.stats().reporting_rate_limited, 0);
}

/// A formatted number as the simulator sends it ("$1,234.50", "3,201", "95.38%"), read here
/// on its own terms to check what the job stored.
fn plain(v: &serde_json::Value) -> f64 {
    let text: String = v
        .as_str()
        .unwrap()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    text.parse().unwrap()
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

fn close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-4, "{what}: {g} against {w}"),
        (g, w) => assert_eq!(g.is_some(), w.is_some(), "{what}: {g:?} against {w:?}"),
    }
}

/// The example query `sql/{name}`.
fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[sqlx::test]
async fn the_reporting_queries_answer_what_the_simulator_reports(pool: PgPool) {
    let (sim, server) = start(SimConfig {
        reporting_limit: None,
        start: Utc::now() - chrono::Duration::days(40),
        end: Utc::now() - chrono::Duration::hours(1),
        ..SimConfig::small(312)
    })
    .await;
    let first = today() - chrono::Duration::days(20);
    // The signup rows from the first day on, and the Reporting API's days.
    let config = SyncConfig {
        since: Some(end_of(first - chrono::Duration::days(1))),
        ..config(&server, settings(first))
    };
    run(&config, &pool).await;

    // What the simulator reports for each campaign and day, its numbers read here.
    let mut want: HashMap<(NaiveDate, String), [f64; 5]> = HashMap::new();
    for day in days_from(first, today()) {
        let d = day.to_string();
        let data = sim
            .reporting_campaigns(&[("from", &d), ("to", &d), ("limit", "100")])
            .unwrap();
        for c in data["campaigns"].as_array().unwrap() {
            let numbers =
                ["spend", "revenue", "sign-ups", "clicks", "installs"].map(|k| plain(&c[k]));
            want.insert(
                (day, c["display_id"].as_str().unwrap().to_string()),
                numbers,
            );
        }
    }

    let sql = example("reporting_cost_per_signup_and_roas.sql");
    let rows = json_rows(&pool, &sql).await;
    assert!(rows.len() > 50, "{}", rows.len());
    let mut paid = 0;
    for row in &rows {
        let [spend, revenue, signups, _, _] = want[&key_of(row)];
        let number = |c: &str| row[c].as_f64();
        close(number("spend"), Some(spend), "spend");
        close(
            number("cost_per_signup"),
            ratio(spend, signups),
            "cost per signup",
        );
        close(number("roas"), ratio(revenue, spend), "roas");
        paid += usize::from(spend > 0.0 && signups > 0.0);
    }
    assert!(paid > 5, "some rows have a cost per signup: {paid}");
    // Newest days first.
    let days: Vec<NaiveDate> = sqlx::query_scalar(&format!(
        "SELECT day FROM ({}) q",
        sql.trim().trim_end_matches(';')
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(days.windows(2).all(|w| w[0] >= w[1]));

    let rows = json_rows(&pool, &example("reporting_funnel.sql")).await;
    let with_clicks = want.values().filter(|n| n[3] > 0.0).count();
    assert_eq!(rows.len(), with_clicks);
    for row in &rows {
        let [_, _, signups, clicks, installs] = want[&key_of(row)];
        let number = |c: &str| row[c].as_f64();
        close(
            number("click_to_install"),
            ratio(installs, clicks),
            "click to install",
        );
        close(
            number("install_to_signup"),
            ratio(signups, installs),
            "install to signup",
        );
        close(
            number("click_to_signup"),
            ratio(signups, clicks),
            "click to signup",
        );
    }

    // Every day agrees at first; a row lost from a settled day, and numbers of a campaign the
    // warehouse does not know, are shown.
    let check = example("reporting_signups_vs_stored.sql");
    assert!(json_rows(&pool, &check).await.is_empty());
    let settled_day = first + chrono::Duration::days(1);
    let lost: (String, NaiveDate) = sqlx::query_as(
        "DELETE FROM linkrunner.attributed_users
         WHERE ctid = (SELECT ctid FROM linkrunner.attributed_users
                       WHERE (attributed_at AT TIME ZONE 'Asia/Kolkata')::date = $1 LIMIT 1)
         RETURNING campaign_display_id, (attributed_at AT TIME ZONE 'Asia/Kolkata')::date",
    )
    .bind(settled_day)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO linkrunner.reporting_daily (day, display_id, view, signups, project_timezone, run_id)
         VALUES ($1, 'NoSuchCampaign', 'user_acquisition', 3, 'Asia/Kolkata', gen_random_uuid())",
    )
    .bind(today())
    .execute(&pool)
    .await
    .unwrap();
    let shown: Vec<(NaiveDate, String, Option<i64>, i64, bool, String)> = json_rows(&pool, &check)
        .await
        .iter()
        .map(|r| {
            let (day, campaign) = key_of(r);
            (
                day,
                campaign,
                r["difference"].as_i64(),
                r["stored_signups"].as_i64().unwrap(),
                r["settled"].as_bool().unwrap(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let api = want[&(lost.1, lost.0.clone())][2] as i64;
    assert_eq!(
        shown,
        [
            (
                lost.1,
                lost.0.clone(),
                Some(-1),
                api - 1,
                true,
                "differ".to_string()
            ),
            (
                today(),
                "NoSuchCampaign".to_string(),
                Some(-3),
                0,
                false,
                "unknown campaign".to_string()
            ),
        ]
    );

    // The bounded form holds the view's rows of its days, differences included, and no others.
    let rows_of = |from: &str| {
        format!(
            "SELECT to_jsonb(c) FROM {from} c WHERE c.day BETWEEN $1 AND $2
             ORDER BY c.day, c.campaign_display_id, c.project_timezone"
        )
    };
    let (from, to) = (settled_day, today());
    let mut bounded = Vec::new();
    for source in [
        "linkrunner.reporting_signup_check",
        "linkrunner.reporting_signup_check_in($1, $2)",
    ] {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(&rows_of(source))
            .bind(from)
            .bind(to)
            .fetch_all(&pool)
            .await
            .unwrap();
        bounded.push(rows);
    }
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM linkrunner.reporting_signup_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(bounded[0], bounded[1]);
    assert!(bounded[1].iter().any(|r| r["verdict"] == "differ"));
    assert!((bounded[1].len() as i64) < all, "the first day is left out");

    // A day the campaign's synced range does not hold whole is not called a difference.
    sqlx::query(
        "UPDATE linkrunner.sync_checkpoints SET covered_from = $2 WHERE campaign_display_id = $1",
    )
    .bind(&lost.0)
    .bind(end_of(settled_day) - chrono::Duration::hours(1))
    .execute(&pool)
    .await
    .unwrap();
    let verdict: String = sqlx::query_scalar(
        "SELECT verdict FROM linkrunner.reporting_signup_check
         WHERE campaign_display_id = $1 AND day = $2",
    )
    .bind(&lost.0)
    .bind(settled_day)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(verdict, "not covered");
}

/// The rows of an example query as JSON objects, numbers as JSON numbers, in its order.
async fn json_rows(pool: &PgPool, sql: &str) -> Vec<serde_json::Value> {
    let wrapped = format!(
        "SELECT to_jsonb(q)::text FROM ({}) q",
        sql.trim().trim_end_matches(';')
    );
    let rows: Vec<String> = sqlx::query_scalar(&wrapped).fetch_all(pool).await.unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

fn key_of(row: &serde_json::Value) -> (NaiveDate, String) {
    (
        row["day"].as_str().unwrap().parse().unwrap(),
        row["campaign_display_id"].as_str().unwrap().to_string(),
    )
}

#[sqlx::test]
async fn a_campaign_deleted_between_two_pages_of_a_day_starts_its_pass_again(pool: PgPool) {
    let (sim, server) = start(SimConfig {
        campaigns: 150,
        users: 1500,
        reporting_limit: None,
        ..SimConfig::small(313)
    })
    .await;
    let mut order: Vec<(DateTime<Utc>, String)> =
        created(&sim).into_iter().map(|(id, at)| (at, id)).collect();
    order.sort();
    let requests = |max_requests| {
        config(
            &server,
            ReportingSettings {
                max_requests,
                ..settings(today())
            },
        )
    };
    run(&requests(1), &pool).await;
    assert_eq!(days(&pool).await[&today()], (2, false, false));

    // The oldest campaign goes: the 101st moves up to page 1, and page 2 would skip it.
    let gone = &order[0].1;
    let deleted = reqwest::Client::new()
        .delete(format!("{}/campaigns/{gone}", server.base_url()))
        .header("linkrunner-key", "sim-key")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let report = run(&requests(1), &pool).await;
    assert_eq!(report.totals.reporting.days, 0);
    assert_eq!(
        days(&pool).await[&today()],
        (1, false, false),
        "the pass starts again"
    );
    let report = run(&requests(2), &pool).await;
    assert_eq!(
        (
            report.totals.reporting.requests,
            report.totals.reporting.days
        ),
        (2, 1)
    );
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT display_id FROM linkrunner.reporting_daily WHERE day = $1")
            .bind(today())
            .fetch_all(&pool)
            .await
            .unwrap();
    let moved = &order[100].1;
    assert!(stored.contains(moved), "the campaign that moved up is read");
    assert_eq!(
        stored.len(),
        150,
        "every live campaign, and the row read before the deletion"
    );
}

/// A loopback API with one campaign whose reporting pages `report` answers, the `n`th request
/// counted from 0.
async fn one_campaign_api(
    report: impl Fn(usize) -> common::hostile::Reply + Send + Sync + 'static,
) -> common::hostile::Hostile {
    use common::hostile::{campaign, page, serve, Reply};
    let asked = std::sync::atomic::AtomicUsize::new(0);
    serve(move |req| {
        if req.path().ends_with("/reporting/campaigns") {
            report(asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
        } else if req.path().ends_with("/campaigns") {
            Reply::json(200, page("campaigns", &[campaign("c1", "One")], 1, 1))
        } else {
            Reply::json(200, page("users", &[], 0, 1))
        }
    })
    .await
}

/// A reporting page holding campaign `c1` with `metrics`.
fn report_page(metrics: serde_json::Value) -> common::hostile::Reply {
    let mut item = serde_json::json!({
        "id": 1, "display_id": "c1", "name": "One", "created_at": "2026-11-01T00:00:00.000Z",
    });
    item.as_object_mut()
        .unwrap()
        .extend(metrics.as_object().unwrap().clone());
    let body = serde_json::json!({
        "msg": "Campaigns fetched successfully", "status": 200,
        "data": {"campaigns": [item], "pagination": {"total": 1, "pages": 1, "page": 1, "limit": 100},
                 "display_currency": "USD", "view": "user_acquisition"},
    });
    common::hostile::Reply::json(200, body.to_string())
}

#[sqlx::test]
async fn a_value_in_another_form_is_null_named_counted_and_kept_as_sent(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let server = one_campaign_api(|_| {
        report_page(serde_json::json!({
            "clicks": "3,201", "installs": "1,204", "sign-ups": "1,148",
            "spend": "N/A", "revenue": "₹1,00,000", "conversion": "95.38%",
        }))
    })
    .await;
    let mut cmd = sync_command(&database_url(&options), &server.url, "sim-key");
    cmd.args([
        "--reporting",
        "--reporting-timezone",
        "UTC",
        "--reporting-rpm",
        "6000",
    ]);
    cmd.args(["--since", &Utc::now().date_naive().to_string()]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 values unparsed"), "{text}");
    assert!(stderr(&out).contains("not numbers in the documented form"));
    let row: (
        String,
        Option<String>,
        Option<String>,
        String,
        Vec<String>,
        String,
    ) = sqlx::query_as(
        "SELECT concat_ws('/', clicks, installs, signups, conversion), spend::text,
                    revenue::text, currency, unparsed, raw ->> 'revenue'
             FROM linkrunner.reporting_daily",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "3201/1204/1148/95.38".to_string(),
            None,
            None,
            "USD".to_string(),
            vec!["revenue".to_string(), "spend".to_string()],
            "₹1,00,000".to_string()
        )
    );
    let counted: i64 = sqlx::query_scalar("SELECT reporting_unparsed FROM linkrunner.sync_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counted, 2);
}

#[sqlx::test]
async fn server_errors_are_asked_again_and_three_in_a_row_end_reporting_for_the_run(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    use common::hostile::Reply;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let db = database_url(&options);
    let command = |url: &str, since: NaiveDate| {
        let mut cmd = sync_command(&db, url, "sim-key");
        cmd.args([
            "--reporting",
            "--reporting-timezone",
            "UTC",
            "--reporting-rpm",
            "6000",
        ]);
        cmd.args(["--since", &since.to_string()]);
        cmd
    };
    let today = Utc::now().date_naive();
    // Two failures, then the page.
    let flaky = one_campaign_api(|n| match n {
        0 => Reply::json(503, "{}"),
        1 => Reply::json(500, "<h1>oops</h1>"),
        _ => report_page(serde_json::json!({"clicks": "7", "sign-ups": "0"})),
    })
    .await;
    let out = output(command(&flaky.url, today)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reporting: 3 requests (0 rate limited), 1 days read"),
        "{text}"
    );
    let clicks: String = sqlx::query_scalar("SELECT clicks::text FROM linkrunner.reporting_daily")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(clicks, "7");

    // Always failing: three tries, then the run ends its reporting (exit 4); signups synced.
    // (Yesterday is due; today was read just now.)
    let down = one_campaign_api(|_| Reply::json(502, "bad gateway")).await;
    let out = output(command(&down.url, today.pred_opt().unwrap())).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed 3 times in a row"),
        "{}",
        stderr(&out)
    );
    let asked = down
        .requests()
        .iter()
        .filter(|r| r.path().ends_with("/reporting/campaigns"))
        .count();
    assert_eq!(asked, 3);
    let (outcome, error): (String, Option<String>) = sqlx::query_as(
        "SELECT outcome, reporting_error FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outcome, "success");
    assert!(error.unwrap().contains("HTTP 502"));
}

/// Santiago skips its midnight when its clocks go forward (2026-09-06 starts at 01:00): that
/// day is 23 hours long, and every campaign's sign-ups on it and around it agree with the rows.
#[sqlx::test]
async fn days_of_a_zone_whose_midnight_is_skipped_agree_with_the_rows(pool: PgPool) {
    const SANTIAGO: Tz = chrono_tz::America::Santiago;
    let (sim, server) = start(SimConfig {
        reporting_limit: None,
        reporting_timezone: SANTIAGO,
        users: 4000,
        ..SimConfig::small(314)
    })
    .await;
    let first = NaiveDate::from_ymd_opt(2026, 9, 3).unwrap();
    let report = run(
        &config(
            &server,
            ReportingSettings {
                timezone: SANTIAGO,
                ..settings(first)
            },
        ),
        &pool,
    )
    .await;
    assert_exact(&pool, &sim).await;
    assert_eq!(report.totals.reporting.days_left, 0);
    let by_day = signups_by_day(&sim, SANTIAGO);
    let stored: Vec<(NaiveDate, String, String, i64, String)> = sqlx::query_as(
        "SELECT c.day, c.campaign_display_id, c.api_signups::text, c.stored_signups, c.verdict
         FROM linkrunner.reporting_signup_check c
         WHERE c.day BETWEEN '2026-09-04' AND '2026-09-08'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut signups_on_the_short_day = 0;
    for (day, campaign, api, rows, verdict) in &stored {
        let want = by_day.get(&(campaign.clone(), *day)).copied().unwrap_or(0);
        assert_eq!(
            (api.as_str(), *rows),
            (want.to_string().as_str(), want),
            "{campaign} {day}"
        );
        assert_eq!(verdict, "agree", "{campaign} {day}");
        if day.to_string() == "2026-09-06" {
            signups_on_the_short_day += want;
        }
    }
    assert!(signups_on_the_short_day > 0);
    // One row per campaign that existed by the day's end, the 23-hour day included.
    let created = created(&sim);
    let existing: usize = days_from(
        NaiveDate::from_ymd_opt(2026, 9, 4).unwrap(),
        NaiveDate::from_ymd_opt(2026, 9, 8).unwrap(),
    )
    .iter()
    .map(|d| {
        let end = linkrunner_sync::model::time::start_of_day(SANTIAGO, d.succ_opt().unwrap());
        created.values().filter(|c| **c < end).count()
    })
    .sum();
    assert_eq!(stored.len(), existing);
}

#[sqlx::test]
async fn until_ends_the_reporting_days_as_it_ends_the_signup_sync(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (sim, server) = unlimited(315).await;
    let mut cmd = reporting_command(&database_url(&options), &server, "6000");
    cmd.args(["--since", "2026-11-01", "--until", "2026-11-10"]);
    cmd.args(["--reporting-max-requests", "100"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let read: Vec<NaiveDate> = days(&pool).await.into_keys().collect();
    let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    assert_eq!(
        read,
        days_from(first, NaiveDate::from_ymd_opt(2026, 11, 9).unwrap())
    );
    assert!(days(&pool).await.values().all(|(_, _, settled)| *settled));
    assert_eq!(sim.stats().reporting_requests, 9);
}

#[sqlx::test]
async fn a_signal_cuts_the_reporting_wait_short_and_the_next_run_reads_each_day_left_once(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (sim, server) = limited(316, Duration::from_secs(1)).await;
    let db = database_url(&options);
    let since = (today() - chrono::Duration::days(9)).to_string();
    let command = |rpm: &str| {
        let mut cmd = reporting_command(&db, &server, rpm);
        cmd.args(["--since", &since, "--reporting-max-requests", "20"]);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    // Two a minute: after the first request, the next is 30 s away.
    let mut child = command("2").spawn().unwrap();
    wait_for(
        "the first reporting request",
        Duration::from_secs(20),
        || async { (sim.stats().reporting_requests >= 1).then_some(()) },
    )
    .await;
    // The wait for the next is cut short: the run ends before it would have made it (a
    // wait seen out would make the second request and go on for minutes).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await
    .expect("the run ends after the signal")
    .unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        sim.stats().reporting_requests,
        1,
        "no request after the signal"
    );
    let (requests, read, error): (i64, i64, Option<String>) = sqlx::query_as(
        "SELECT reporting_requests, reporting_days, reporting_error FROM linkrunner.sync_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(requests, 1);
    assert!(error.unwrap().contains("stopped by a signal"));
    let stored = days(&pool).await;
    assert_eq!(stored.len() as i64, read, "every day answered is committed");

    let out = output(command("60")).await;
    assert!(out.status.success());
    let stored = days(&pool).await;
    assert_eq!(stored.len(), 10);
    assert!(stored
        .values()
        .all(|(page, done, _)| (*page, *done) == (1, true)));
    let stats = sim.stats();
    assert_eq!(
        stats.reporting_requests - stats.reporting_rate_limited,
        10,
        "each day was answered once"
    );
}
