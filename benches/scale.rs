//! `cargo bench --bench scale`: what the job's recurring work costs over a warehouse of 1 M
//! stored rows and over one of 10 M, printed as a Markdown table with the ratio 10 M / 1 M
//! beside each figure.
//!
//! Both warehouses get the same rows per day and the same 2,000 campaigns; the larger one holds
//! ten times the history. So a cost that follows what changed, or a 30-day query, should not
//! move between them, and one that follows what is stored grows tenfold. Each size starts the
//! simulator (this executable, run again with `--simulator`) and a fresh database, backfills
//! it, vacuums it (a warehouse that has run a while has been), and then measures each step:
//! wall time, the CPU time of every Postgres process (backends that exit included) and the
//! rows Postgres read from the job's tables (`pg_stat_user_tables`: sequential plus index
//! fetches), with the index entries and the sequential scans of `attributed_users` beside them.
//! It ends with a check that every campaign holds exactly the simulator's rows.
//!
//! `cargo bench --bench scale -- --sizes 100000,1000000` measures other sizes (the ratio is
//! always last / first).

use std::time::Instant;

use sqlx::{Connection, Executor, PgConnection, Row};

#[path = "common/child.rs"]
mod child;

use child::{admin_url, db_url, job, signups, Sim};

const DB: &str = "linkrunner_scale";
const CAMPAIGNS: usize = 2_000;
/// Rows per day of history, at every size.
const ROWS_PER_DAY: usize = 10_000;
/// The last day of the simulated data; the 30-day queries end here.
const END: &str = "2026-11-15";
const ZONE: &str = "Asia/Kolkata";
const FAST: [&str; 3] = ["--rps", "10000", "--no-progress"];
const REPORTING: [&str; 10] = [
    "--reporting",
    "--reporting-timezone",
    ZONE,
    "--reporting-rpm",
    "6000",
    "--reporting-max-requests",
    "100000",
    "--reporting-lookback",
    "30d",
    "--no-progress",
];

/// What one step cost.
#[derive(Clone, Copy, Default)]
struct Cost {
    wall: f64,
    pg_cpu: f64,
    rows_read: i64,
    index_entries: i64,
    seq_scans: i64,
}

/// Reads of the job's tables so far.
#[derive(Clone, Copy)]
struct Reads {
    rows: i64,
    index_entries: i64,
    seq_scans: i64,
}

/// The start of a measured step.
struct Meter {
    started: Instant,
    cpu: f64,
    reads: Reads,
}

impl Meter {
    async fn start() -> Meter {
        let reads = reads().await;
        Meter {
            started: Instant::now(),
            cpu: postgres_cpu(),
            reads,
        }
    }

    async fn stop(self) -> Cost {
        let wall = self.started.elapsed().as_secs_f64();
        let reads = reads().await;
        Cost {
            wall,
            pg_cpu: postgres_cpu() - self.cpu,
            rows_read: reads.rows - self.reads.rows,
            index_entries: reads.index_entries - self.reads.index_entries,
            seq_scans: reads.seq_scans - self.reads.seq_scans,
        }
    }
}

/// Table statistics, read on a connection of its own once every other session of the bench
/// database has ended (a backend reports its reads when it exits, and a snapshot is per
/// transaction).
async fn reads() -> Reads {
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    for _ in 0..200 {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.close().await.unwrap();
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    let row = sqlx::query(
        "SELECT (SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::int8
                 FROM pg_stat_user_tables WHERE schemaname = 'linkrunner'),
                (SELECT coalesce(sum(idx_tup_read), 0)::int8 FROM pg_stat_user_indexes
                 WHERE schemaname = 'linkrunner' AND relname = 'attributed_users'),
                (SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables
                 WHERE schemaname = 'linkrunner' AND relname = 'attributed_users')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    let reads = Reads {
        rows: row.get(0),
        index_entries: row.get(1),
        seq_scans: row.get::<Option<i64>, _>(2).unwrap_or(0),
    };
    db.close().await.unwrap();
    reads
}

/// CPU seconds of every Postgres process so far: the live ones' own, and the postmaster's
/// reaped children's (backends and workers that have exited).
fn postgres_cpu() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let pid: u64 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // After the command: state, ppid, ... utime (11), stime, cutime, cstime.
        procs.push((pid, n(1) as u64, n(11) + n(12), n(13) + n(14)));
    }
    let pids: std::collections::HashSet<u64> = procs.iter().map(|p| p.0).collect();
    let ticks: f64 = procs
        .iter()
        .map(|&(_, ppid, own, reaped)| own + if pids.contains(&ppid) { 0.0 } else { reaped })
        .sum();
    ticks / tick
}

async fn fresh_database() {
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("Postgres answers (scripts/test starts it)");
    for sql in [
        format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
        format!("CREATE DATABASE {DB}"),
    ] {
        admin.execute(sql.as_str()).await.unwrap();
    }
}

/// One size: the backfill's rate, the figures of each step, and the rows that differ from the
/// simulator's at the end.
struct Size {
    rows: i64,
    backfill: f64,
    backfill_requests: u64,
    steps: Vec<(&'static str, Cost)>,
    mismatches: Vec<String>,
    sim_rss_mb: f64,
}

/// A step run as the job, measured.
async fn step(sim: &Sim, args: &[&str]) -> (Cost, String) {
    let meter = Meter::start().await;
    let (_, out) = job(DB, Some(sim), args);
    (meter.stop().await, out)
}

/// A query an analyst runs, measured: every row fetched.
async fn query(sql: &str) -> Cost {
    let meter = Meter::start().await;
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    let mut rows = sqlx::raw_sql(sql).fetch(&mut db);
    while futures::StreamExt::next(&mut rows).await.is_some() {}
    drop(rows);
    db.close().await.unwrap();
    meter.stop().await
}

async fn measure(users: usize) -> Size {
    let days = users / ROWS_PER_DAY;
    let end: chrono::NaiveDate = END.parse().unwrap();
    let start = (end - chrono::Duration::days(days as i64)).to_string();
    let sim = Sim::start(
        CAMPAIGNS,
        users,
        &[
            "--start",
            &start,
            "--end",
            END,
            "--reporting-limit",
            "0",
            "--reporting-timezone",
            ZONE,
        ],
    );
    fresh_database().await;
    let (_, _) = job(DB, None, &["migrate"]);

    let mut steps = Vec::new();
    let backfill = Meter::start().await;
    let (run, _) = job(DB, Some(&sim), &[&["sync"][..], &FAST[..]].concat());
    let backfill = backfill.stop().await;
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM linkrunner.attributed_users")
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    settle().await;

    // Each recurring step three times, the median reported: one run lasts a fraction of a
    // second, at the mercy of whatever else the machine does.
    let sync = [&["sync"][..], &FAST[..]].concat();
    steps.push(("idle run", median(&sim, &sync, 3).await));
    let mut changed = Vec::new();
    for tag in ["a1", "a2", "a3"] {
        signups(&sim, CAMPAIGNS / 100, tag).await;
        changed.push(step(&sim, &sync).await.0);
    }
    steps.push(("1% of campaigns changed", middle(changed)));
    let details = [
        &sync[..],
        &["--attribution-details", "--max-lookups", "1000"],
    ]
    .concat();
    let (first, _) = step(&sim, &details).await;
    settle().await;
    let mut looked_up = Vec::new();
    for tag in ["b1", "b2", "b3"] {
        signups(&sim, CAMPAIGNS / 100, tag).await;
        looked_up.push(step(&sim, &details).await.0);
    }
    steps.push((
        "1% changed, --attribution-details (1,000 look-ups)",
        middle(looked_up),
    ));
    steps.push(("status", median(&sim, &["status"], 3).await));
    steps.push((
        "status --format json",
        median(&sim, &["status", "--format", "json"], 3).await,
    ));
    let mut forgotten = Vec::new();
    for email in stored_emails(3).await {
        forgotten.push(step(&sim, &["forget", "--email", &email]).await.0);
    }
    steps.push(("forget --email", middle(forgotten)));
    let last = end - chrono::Duration::days(1);
    let first_day = last - chrono::Duration::days(29);
    let since = first_day.to_string();
    let reporting = [&["sync", "--since", &since][..], &REPORTING[..], &FAST[..2]].concat();
    steps.push((
        "--reporting over 30 days (--since: their rows read again too)",
        step(&sim, &reporting).await.0,
    ));
    settle().await;
    let (from, to) = (format!("{first_day}T00:00:00Z"), format!("{END}T00:00:00Z"));
    let range = format!("attributed_at >= '{from}' AND attributed_at < '{to}'");
    for (name, sql) in [
        (
            "30 days: daily_signups_in",
            format!("SELECT * FROM linkrunner.daily_signups_in('{ZONE}', '{first_day}', '{last}')"),
        ),
        (
            "30 days: attributed_users_clean",
            format!("SELECT * FROM linkrunner.attributed_users_clean WHERE {range}"),
        ),
        (
            "30 days: attributed_users_with_details",
            format!("SELECT * FROM linkrunner.attributed_users_with_details WHERE {range}"),
        ),
        (
            "30 days: time_to_signup",
            format!("SELECT * FROM linkrunner.time_to_signup WHERE {range}"),
        ),
        (
            "30 days: reporting_signup_check",
            format!("SELECT * FROM linkrunner.reporting_signup_check_in('{first_day}', '{last}')"),
        ),
        (
            "data_freshness",
            "SELECT * FROM linkrunner.data_freshness".into(),
        ),
        (
            "all time: campaign_performance",
            "SELECT * FROM linkrunner.campaign_performance".into(),
        ),
        (
            "all time: reattributed_users",
            "SELECT * FROM linkrunner.reattributed_users".into(),
        ),
    ] {
        steps.push((name, query(&sql).await));
    }
    steps.push(("first --attribution-details run (once)", first));

    let mismatches = mismatches(&sim).await;
    let sim_rss_mb = sim_rss(&sim);
    Size {
        rows,
        backfill: backfill.wall,
        backfill_requests: run.requests,
        steps,
        mismatches,
        sim_rss_mb,
    }
}

/// The emails of `n` stored rows (those with the least keys), to forget.
async fn stored_emails(n: i64) -> Vec<String> {
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    let emails = sqlx::query_scalar(
        "SELECT user_email FROM linkrunner.attributed_users \
         WHERE user_email LIKE '%@%' ORDER BY campaign_display_id, attributed_at, row_key LIMIT $1",
    )
    .bind(n)
    .fetch_all(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    emails
}

/// Vacuums and analyzes every table and writes every dirty page out, as a warehouse that has
/// run a while has been, so that no step pays for an earlier one's writes.
async fn settle() {
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    db.execute("VACUUM (ANALYZE)").await.unwrap();
    db.execute("CHECKPOINT").await.unwrap();
    db.close().await.unwrap();
}

/// The job run `n` times with `args`: the run of median wall time.
async fn median(sim: &Sim, args: &[&str], n: usize) -> Cost {
    let mut costs = Vec::new();
    for _ in 0..n {
        costs.push(step(sim, args).await.0);
    }
    middle(costs)
}

fn middle(mut costs: Vec<Cost>) -> Cost {
    costs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    costs[costs.len() / 2]
}

/// Campaigns whose stored rows, with the rows forgotten, differ from the simulator's true rows:
/// display id, stored, true and how the counter lies.
async fn mismatches(sim: &Sim) -> Vec<String> {
    let mut db = PgConnection::connect(&db_url(DB)).await.unwrap();
    let stored: std::collections::HashMap<String, i64> = sqlx::query_as(
        "SELECT c.display_id, (SELECT count(*) FROM linkrunner.attributed_users a
                               WHERE a.campaign_display_id = c.display_id)
                            + (SELECT count(*) FROM linkrunner.forgotten_rows f
                               WHERE f.campaign_display_id = c.display_id)
         FROM linkrunner.campaigns c WHERE c.deleted_at IS NULL",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    db.close().await.unwrap();
    let counters = sim.counters().await;
    let differ = counters.iter().filter_map(|c| {
        let id = c["display_id"].as_str().unwrap();
        let stored = stored.get(id).copied().unwrap_or(0);
        let rows = c["rows"].as_i64().unwrap();
        (stored != rows)
            .then(|| format!("{id}: {stored} stored, {rows} true, counter {}", c["lie"]))
    });
    differ.collect()
}

fn sim_rss(sim: &Sim) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", sim.pid())).unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--simulator") {
        args.remove(1);
        linkrunner_sim::cli::main(args).expect("the simulator serves");
        return;
    }
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1))
        .map(|s| {
            s.split(',')
                .map(|n| n.parse().expect("--sizes takes numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(bench(sizes));
}

fn rows_label(n: i64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{} M", n / 1_000_000)
    } else {
        n.to_string()
    }
}

async fn bench(sizes: Vec<usize>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "linkrunner-sync scale benchmark: {cores} cores, {CAMPAIGNS} campaigns, {ROWS_PER_DAY} rows a day of history\n"
    );
    let mut measured = Vec::new();
    for &users in &sizes {
        let size = measure(users).await;
        println!(
            "{} rows: backfill {:.0} s, {:.0} rows/s, {} requests; simulator peak RSS {:.0} MB; campaigns not exact at the end: {:?}",
            size.rows,
            size.backfill,
            size.rows as f64 / size.backfill,
            size.backfill_requests,
            size.sim_rss_mb,
            size.mismatches
        );
        measured.push(size);
    }
    let (Some(a), Some(b)) = (measured.first(), measured.last()) else {
        return;
    };
    let (la, lb) = (rows_label(a.rows), rows_label(b.rows));
    println!("\n| step | wall s {la} | {lb} | ratio | Postgres CPU s {la} | {lb} | ratio | rows read {la} | {lb} | ratio | index entries {la} | {lb} | seq scans of attributed_users {la} / {lb} |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ratio = |x: f64, y: f64| {
        if x > 0.0 {
            format!("{:.2}", y / x)
        } else {
            "-".into()
        }
    };
    for ((name, x), (_, y)) in a.steps.iter().zip(&b.steps) {
        println!(
            "| {name} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} / {} |",
            x.wall,
            y.wall,
            ratio(x.wall, y.wall),
            x.pg_cpu,
            y.pg_cpu,
            ratio(x.pg_cpu, y.pg_cpu),
            x.rows_read,
            y.rows_read,
            ratio(x.rows_read as f64, y.rows_read as f64),
            x.index_entries,
            y.index_entries,
            x.seq_scans,
            y.seq_scans,
        );
    }
}
