//! `cargo bench`: throughput, rate-limit efficiency, requests per run and peak memory of
//! `linkrunner-sync` against the simulator and a local Postgres, printed as Markdown tables.
//!
//! Each size starts the simulator (this executable, run again with `--simulator`) and a fresh
//! database, runs the release binary as a child
//! process (so its CPU time and peak RSS are its own), checks the database against the
//! simulator's counters, and times a plain `COPY` of the same rows into the same table.
//! Each repeat of a size times the job and then the `COPY`s on the same rows, so a ratio compares
//! runs a second apart; the 10,000-row size is measured nine times, 100,000 five, the largest
//! once, and medians are reported (of the ratios, too).
//! `cargo bench -- --max-users 100000` stops at a smaller size.

use std::process::{Command, Stdio};
use std::time::Instant;

use sqlx::{Connection, Executor, PgConnection};

#[path = "common/child.rs"]
mod child;
mod common;

use child::{admin_url, signups, Run, Sim};

const SYNC: &str = env!("CARGO_BIN_EXE_linkrunner-sync");
const DB: &str = "linkrunner_bench";

/// One run of the job, in the bench database.
fn sync(sim: &Sim, args: &[&str]) -> Run {
    child::sync(DB, sim, args)
}

fn db_url() -> String {
    child::db_url(DB)
}

/// Installs the schema in the bench database.
fn migrate() {
    let status = Command::new(SYNC)
        .arg("migrate")
        .env("DATABASE_URL", db_url())
        .stdout(Stdio::null())
        .status()
        .expect("linkrunner-sync migrate runs");
    assert!(status.success(), "migrate failed");
}

/// Writes every dirty page out, so the next timed phase starts clean.
async fn checkpoint() {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    admin.execute("CHECKPOINT").await.unwrap();
}

async fn fresh_database() {
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("Postgres answers (scripts/test starts it)");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {DB}").as_str())
        .await
        .unwrap();
}

/// A fresh database with the schema installed, from a checkpoint: the schema is installed
/// before the clock starts, and both timed phases start clean, so neither pays for the other's
/// dirty pages.
async fn fresh_schema() {
    fresh_database().await;
    migrate();
    checkpoint().await;
}

/// Rows per campaign in the database against the simulator's true rows (not its counters, a
/// fifth of which lie); returns (rows, the lie of each campaign whose rows differ, the fewest
/// requests a backfill can make).
async fn check(db: &mut PgConnection, sim: &Sim) -> (i64, Vec<String>, u64) {
    let stored: std::collections::HashMap<String, i64> = sqlx::query_as(
        "SELECT campaign_display_id, count(*) FROM linkrunner.attributed_users GROUP BY 1",
    )
    .fetch_all(&mut *db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let truth = sim.counters().await;
    let mut total = 0;
    let mut mismatches = Vec::new();
    let mut minimum = truth.len().div_ceil(1000) as u64;
    for c in &truth {
        let rows = c["rows"].as_i64().unwrap();
        let have = stored
            .get(c["display_id"].as_str().unwrap())
            .copied()
            .unwrap_or(0);
        total += have;
        if have != rows {
            mismatches.push(c["lie"]["kind"].as_str().unwrap().to_string());
        }
        minimum += (rows as u64).div_ceil(1000).max(1);
    }
    (total, mismatches, minimum)
}

/// The rows the 1% run left behind trusted counters that lag, and how long the last of them
/// waited from its signup until a run stored it.
struct Wait {
    rows: i64,
    runs: u32,
    /// None: not all stored within the 20 minutes measured.
    seconds: Option<f64>,
}

/// Runs the job once a minute, as a cron every minute would, until the stored rows match the
/// simulator's (at most 20 minutes).
async fn stragglers(db: &mut PgConnection, sim: &Sim, signed_at: Instant) -> Wait {
    let rows = missing_rows(db, sim).await;
    let mut wait = Wait {
        rows,
        runs: 0,
        seconds: Some(0.0),
    };
    if rows == 0 {
        return wait;
    }
    let started = Instant::now();
    while started.elapsed().as_secs() < 1200 {
        let next = std::time::Duration::from_secs(60 * (u64::from(wait.runs) + 1));
        tokio::time::sleep(next.saturating_sub(started.elapsed())).await;
        sync(sim, &["--rps", "10000", "--no-progress"]);
        wait.runs += 1;
        if missing_rows(db, sim).await == 0 {
            wait.seconds = Some(signed_at.elapsed().as_secs_f64());
            return wait;
        }
    }
    wait.seconds = None;
    wait
}

/// Rows the simulator holds that the database does not (or the reverse), over all campaigns.
async fn missing_rows(db: &mut PgConnection, sim: &Sim) -> i64 {
    let stored: std::collections::HashMap<String, i64> = sqlx::query_as(
        "SELECT campaign_display_id, count(*) FROM linkrunner.attributed_users GROUP BY 1",
    )
    .fetch_all(&mut *db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let truth = sim.counters().await;
    let of = |c: &serde_json::Value| stored.get(c["display_id"].as_str().unwrap()).copied();
    truth
        .iter()
        .map(|c| (c["rows"].as_i64().unwrap() - of(c).unwrap_or(0)).abs())
        .sum()
}

/// Campaigns whose counters the job does not trust now.
async fn untrusted(db: &mut PgConnection) -> std::collections::HashSet<String> {
    sqlx::query_scalar(
        "SELECT campaign_display_id FROM linkrunner.data_freshness WHERE NOT counter_trusted",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Campaigns untrusted only because their counters agreed at zero rows: the rule before
/// migration 11 trusted them, and skipped them while their counters read 0.
async fn without_evidence(db: &mut PgConnection) -> usize {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM linkrunner.sync_checkpoints
         WHERE trusted_from IS NULL AND rows_at_sync = 0 AND counter_at_sync = 0",
    )
    .fetch_one(db)
    .await
    .unwrap();
    n as usize
}

/// Times a plain `COPY` of the stored rows into an empty copy of the table, in text (the
/// default) and in binary format (what the job sends); returns rows per second of each. The rows
/// go through a server-side file, so this process never holds them (its children would inherit
/// the memory in their peak RSS) and the figure is Postgres's own ingest rate.
async fn copy_ceiling(db: &mut PgConnection) -> (f64, f64) {
    (copy_rate(db, "text").await, copy_rate(db, "binary").await)
}

async fn copy_rate(db: &mut PgConnection, format: &str) -> f64 {
    let columns =
        "campaign_display_id, attributed_at, row_key, user_id, ad_channel, campaign_name, link,
        meta_ad_id, ad_creative_id, ad_creative_name, ad_set_id, ad_set_name, publisher_platform,
        platform_position, installed_at, store_click_at, user_data, extra";
    let file = "/tmp/linkrunner_bench_copy";
    let options = format!("(FORMAT {format})");
    db.execute(
        format!("COPY linkrunner.attributed_users ({columns}) TO '{file}' {options}").as_str(),
    )
    .await
    .expect("COPY TO a server file (BENCH_ADMIN_URL must be a superuser)");
    db.execute("DROP TABLE IF EXISTS linkrunner.copy_target")
        .await
        .unwrap();
    db.execute(
        "CREATE TABLE linkrunner.copy_target (LIKE linkrunner.attributed_users INCLUDING ALL)",
    )
    .await
    .unwrap();
    checkpoint().await;
    let started = Instant::now();
    let rows = db
        .execute(
            format!("COPY linkrunner.copy_target ({columns}) FROM '{file}' {options}").as_str(),
        )
        .await
        .unwrap()
        .rows_affected();
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    db.execute("DROP TABLE linkrunner.copy_target")
        .await
        .unwrap();
    let _ = std::fs::remove_file(file);
    rate
}

/// The 1% run again, this time with `linkrunner-sync receive` running and the simulator pushing
/// its webhooks to it: new signups on the same campaigns, one run once every delivery has ended,
/// and the campaigns it left missing rows, by kind of counter ("0" when the push steered it to
/// every one of them).
async fn pushed_run(db: &mut PgConnection, sim: &Sim, n: usize) -> String {
    const KEY: &str = "bench-webhook-key";
    let (mut receiver, listen) = common::receiver(&db_url(), KEY, &[]).await;
    let http = reqwest::Client::new();
    let root = sim.base.trim_end_matches("/api/v1");
    let target =
        serde_json::json!({"url": format!("http://{listen}/webhooks/linkrunner"), "key": KEY});
    let set = http
        .post(format!("{root}/__sim/webhook"))
        .json(&target)
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "the simulator takes the target");
    signups(sim, n, "pushed-").await;
    let waited = http
        .get(format!("{root}/__sim/webhook/wait?timeout_ms=120000"))
        .send()
        .await
        .unwrap();
    assert!(waited.status().is_success(), "every delivery ends");
    sync(sim, &["--rps", "10000", "--no-progress"]);
    let (_, missed, _) = check(db, sim).await;
    let _ = http
        .post(format!("{root}/__sim/webhook"))
        .json(&serde_json::json!({"url": null}))
        .send()
        .await;
    let _ = receiver.start_kill();
    let _ = receiver.wait().await;
    missed_by_kind(&missed)
}

/// Peak memory of backfills whose rows are spread evenly over campaigns of different sizes
/// (every row with full iOS or Android `device_data`), beside their throughput. Each shape is
/// run three times; the table gives the median time and the range of peaks.
async fn memory_over_shapes(max_users: usize) {
    println!(
        "\n| shape | campaigns | rows each | rows | backfill s | rows/s | peak RSS MB (3 runs) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (shape, campaigns, each) in [
        ("many of a few hundred", 1_400, 700),
        ("many of a thousand", 1_000, 1_000),
        ("fewer of a few hundred", 500, 700),
        ("few of thousands", 300, 3_300),
        ("fewer of thousands", 120, 3_000),
        ("many tiny", 2_500, 60),
    ] {
        let users = campaigns * each;
        if users > max_users {
            continue;
        }
        let sim = Sim::start(campaigns, users, &["--even"]);
        let mut runs: Vec<Run> = Vec::new();
        for _ in 0..3 {
            fresh_schema().await;
            runs.push(sync(&sim, &["--rps", "10000", "--no-progress"]));
        }
        let mut conn = PgConnection::connect(&db_url()).await.unwrap();
        let (rows, mismatches, _) = check(&mut conn, &sim).await;
        assert!(mismatches.is_empty(), "{shape}: stored rows differ");
        let peaks: Vec<f64> = runs.iter().map(|r| r.max_rss_mb).collect();
        let (low, high) = (
            peaks.iter().copied().fold(f64::MAX, f64::min),
            peaks.iter().copied().fold(0.0, f64::max),
        );
        let seconds = median(runs.iter().map(|r| r.seconds).collect());
        println!(
            "| {shape} | {campaigns} | {each} | {rows} | {seconds:.1} | {:.0} | {low:.0}–{high:.0} |",
            rows as f64 / seconds
        );
    }
}

/// "0", or how many campaigns miss rows and behind which kinds of counter, e.g. "3 (lag 3)".
fn missed_by_kind(kinds: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for k in kinds {
        *counts.entry(k.as_str()).or_insert(0) += 1;
    }
    let each: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    match kinds.len() {
        0 => "0".into(),
        n => format!("{n} ({})", each.join(", ")),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--simulator") {
        args.remove(1);
        linkrunner_sim::cli::main(args).expect("the simulator serves");
        return;
    }
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(bench(args));
}

async fn bench(args: Vec<String>) {
    let max_users: usize = args
        .iter()
        .position(|a| a == "--max-users")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "linkrunner-sync benchmark: {cores} cores, Postgres at {}\n",
        admin_url().rsplit_once('@').map_or("", |(_, h)| h)
    );

    println!("| campaigns | users | backfill s | rows/s | COPY rows/s | vs COPY | binary COPY rows/s | vs binary | CPU s / M rows | peak RSS MB | backfill requests (min) | untrusted counters | of them no evidence | idle run requests (floor) | idle floor, old rule | 1% changed requests (floor) | rows checked | mismatches | missed by the 1% run |");
    println!(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut waits = Vec::new();
    for (campaigns, users) in [(100, 10_000), (1_000, 100_000), (10_000, 1_000_000)] {
        if users > max_users {
            continue;
        }
        let sim = Sim::start(campaigns, users, &[]);
        // Short runs are at the mercy of whatever else the machine does: the smaller sizes are
        // measured several times, each from a fresh database, and the medians reported.
        let repeats = if users <= 10_000 {
            9
        } else if users <= 100_000 {
            5
        } else {
            1
        };
        let mut backfills = Vec::new();
        let mut copies = Vec::new();
        let mut binary_copies = Vec::new();
        let mut checked = (0, 0, 0);
        let mut db = None;
        for _ in 0..repeats {
            fresh_schema().await;
            backfills.push(sync(&sim, &["--rps", "10000", "--no-progress"]));
            let mut conn = PgConnection::connect(&db_url()).await.unwrap();
            let (rows, mismatches, minimum) = check(&mut conn, &sim).await;
            checked = (rows, checked.1 + mismatches.len(), minimum);
            let (text, binary) = copy_ceiling(&mut conn).await;
            copies.push(text);
            binary_copies.push(binary);
            db = Some(conn);
        }
        let (rows, mismatches, minimum) = checked;
        let mut db = db.expect("at least one repeat");
        let rates: Vec<f64> = backfills.iter().map(|b| rows as f64 / b.seconds).collect();
        let ratio =
            |ceilings: &[f64]| median(rates.iter().zip(ceilings).map(|(r, c)| r / c).collect());
        let (vs_copy, vs_binary) = (ratio(&copies), ratio(&binary_copies));
        backfills.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let backfill = backfills.swap_remove(backfills.len() / 2);
        let (copy, binary_copy) = (median(copies), median(binary_copies));
        // An incremental run reads the list and every campaign whose counter it does not trust.
        let list = campaigns.div_ceil(1000);
        let distrusted = untrusted(&mut db).await;
        let no_evidence = without_evidence(&mut db).await;
        let idle = sync(&sim, &["--rps", "10000", "--no-progress"]);
        let signed_at = Instant::now();
        let changed = signups(&sim, (campaigns / 100).max(1), "").await;
        let some_floor = list + distrusted.union(&changed.into_iter().collect()).count();
        let some = sync(&sim, &["--rps", "10000", "--no-progress"]);
        let (rows_after, missed, _) = check(&mut db, &sim).await;
        let wait = stragglers(&mut db, &sim, signed_at).await;
        let pushed = pushed_run(&mut db, &sim, (campaigns / 100).max(1)).await;
        waits.push((campaigns, wait, pushed));
        let rate = rows as f64 / backfill.seconds;
        println!(
            "| {campaigns} | {users} | {:.1} | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0}% | {:.1} | {:.0} | {} ({minimum}) | {} ({:.0}%) | {no_evidence} | {} ({}) | {} | {} ({some_floor}) | {rows_after} | {mismatches} | {} |",
            backfill.seconds,
            rate,
            copy,
            100.0 * vs_copy,
            binary_copy,
            100.0 * vs_binary,
            backfill.cpu / rows as f64 * 1e6,
            backfill.max_rss_mb.max(idle.max_rss_mb).max(some.max_rss_mb),
            backfill.requests,
            distrusted.len(),
            100.0 * distrusted.len() as f64 / campaigns as f64,
            idle.requests,
            list + distrusted.len(),
            list + distrusted.len() - no_evidence,
            some.requests,
            missed_by_kind(&missed),
        );
    }

    println!("\n| campaigns | rows the 1% run left for later | runs after it (one a minute) | longest wait s | missed by a 1% run, receiver running |");
    println!("|---:|---:|---:|---:|---:|");
    for (campaigns, wait, pushed) in waits {
        println!(
            "| {campaigns} | {} | {} | {} | {pushed} |",
            wait.rows,
            wait.runs,
            wait.seconds
                .map_or("more than 1200".into(), |s| format!("{s:.0}"))
        );
    }

    memory_over_shapes(max_users).await;

    println!("\n| limit (req/s) | requests | seconds | sustained req/s | of limit | 429s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for limit in [10, 30] {
        let sim = Sim::start(
            limit * 30,
            limit * 600,
            &["--rate-limit", &limit.to_string()],
        );
        fresh_database().await;
        let run = sync(&sim, &["--rps", &limit.to_string(), "--no-progress"]);
        let rate = run.requests as f64 / run.seconds;
        let limited = sim.stats().await["rate_limited"].as_u64().unwrap_or(0);
        println!(
            "| {limit} | {} | {:.1} | {:.2} | {:.1}% | {limited} |",
            run.requests,
            run.seconds,
            rate,
            100.0 * rate / limit as f64
        );
    }
    lookups_beside_a_backfill().await;
}

/// Attribution look-ups while a backfill runs, under the simulator's own rate limit: the rate
/// both sustain together, the backfill's reads timed with and without look-ups beside them,
/// and the look-ups against the distinct ids due.
async fn lookups_beside_a_backfill() {
    println!("\n| limit (req/s) | backfill requests | reads done, alone (s) | reads done, beside look-ups (s) | look-ups (min) | ids due | ids looked up twice | seconds | sustained req/s | of limit | 429s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for limit in [10, 30] {
        let rate_limit = limit.to_string();
        let sim = Sim::start(limit * 30, limit * 600, &["--rate-limit", &rate_limit]);
        let plain = ["--rps", rate_limit.as_str(), "--no-progress"];
        fresh_database().await;
        let alone = sync(&sim, &plain);
        let reads_alone = reads_done().await;
        fresh_database().await;
        // As many look-ups as the backfill has requests: half of the run's budget each.
        let budget = alone.requests.to_string();
        let with = [
            &plain[..],
            &["--attribution-details", "--max-lookups", &budget],
        ]
        .concat();
        let limited_before = sim.stats().await["rate_limited"].as_u64().unwrap_or(0);
        let run = sync(&sim, &with);
        let limited = sim.stats().await["rate_limited"].as_u64().unwrap_or(0) - limited_before;
        let reads_beside = reads_done().await;
        let mut conn = PgConnection::connect(&db_url()).await.unwrap();
        let (due, stored): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(DISTINCT user_id) FROM linkrunner.attributed_users
                     WHERE user_id <> '')
                  + (SELECT count(DISTINCT d.v) FROM linkrunner.attributed_users a,
                       LATERAL (VALUES (a.user_data->'device_data'->>'gaid'),
                                       (a.user_data->'device_data'->>'idfa')) d(v)
                     WHERE coalesce(a.user_id, '') = '' AND d.v <> ''),
                    (SELECT count(*) FROM linkrunner.attribution_results)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let rate = run.requests as f64 / run.seconds;
        println!(
            "| {limit} | {} | {reads_alone:.1} | {reads_beside:.1} | {} ({}) | {due} | {} | {:.1} | {rate:.2} | {:.1}% | {limited} |",
            alone.requests,
            run.lookups,
            due.min(alone.requests as i64),
            run.lookups as i64 - stored,
            run.seconds,
            100.0 * rate / limit as f64,
        );
    }
}

/// Seconds from the last run's start to the commit of its last range.
async fn reads_done() -> f64 {
    let mut conn = PgConnection::connect(&db_url()).await.unwrap();
    sqlx::query_scalar(
        "SELECT extract(epoch FROM max(w.completed_at) - r.started_at)::float8
         FROM linkrunner.sync_runs r JOIN linkrunner.sync_windows w ON w.run_id = r.run_id
         WHERE r.run_id = (SELECT run_id FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT 1)
         GROUP BY r.started_at",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}
