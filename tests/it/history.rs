//! Costs that do not grow with history: an incremental run (its look-ups included), `status` and
//! `forget` find what they need of `attributed_users` through its indexes, the counts kept
//! beside it and the look-up queue, and those counts stay equal to the rows.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use linkrunner_sim::SimConfig;
use sqlx::PgPool;

/// Sequential scans of `attributed_users` counted so far, and the entries its indexes gave
/// back, once every other session of the database has ended (a backend's figures reach the
/// statistics when it exits).
async fn reads(pool: &PgPool) -> (i64, i64) {
    let others = "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    wait_for(
        "the other sessions to end",
        Duration::from_secs(30),
        || async { (count(pool, others).await < pool.size() as i64).then_some(()) },
    )
    .await;
    sqlx::query_as(
        "SELECT t.seq_scan, (SELECT sum(i.idx_tup_read)::int8 FROM pg_stat_user_indexes i
                             WHERE i.relid = t.relid)
         FROM pg_stat_user_tables t
         WHERE t.schemaname = 'linkrunner' AND t.relname = 'attributed_users'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Rows per campaign, counted and as kept in `campaign_row_counts`.
async fn counts(pool: &PgPool) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let counted = sqlx::query_as(
        "SELECT campaign_display_id, count(*) FROM linkrunner.attributed_users GROUP BY 1",
    );
    let kept = sqlx::query_as(
        "SELECT campaign_display_id, sum(rows)::int8 FROM linkrunner.campaign_row_counts
         GROUP BY 1 HAVING sum(rows) <> 0",
    );
    let counted: Vec<(String, i64)> = counted.fetch_all(pool).await.unwrap();
    let kept: Vec<(String, i64)> = kept.fetch_all(pool).await.unwrap();
    (counted.into_iter().collect(), kept.into_iter().collect())
}

#[sqlx::test]
async fn incremental_work_reads_attributed_users_through_indexes_only(pool: PgPool) {
    let config = SimConfig {
        users: 6000,
        ..SimConfig::small(311)
    };
    let (sim, server) = start(config).await;
    let url = database_url(&pool.connect_options());
    let sync = || {
        let mut cmd = sync_command(&url, &server.base_url(), "sim-key");
        cmd.args(["--attribution-details", "--max-lookups", "100000"]);
        cmd
    };
    // The first look-ups read every row once, to queue every id.
    assert!(output(sync()).await.status.success());
    let queued = count(&pool, "SELECT count(*) FROM linkrunner.attribution_results").await;
    assert!(queued > 0, "the backfill's ids were looked up");
    // Priced out, a sequential scan is still chosen where no index can serve, so each one
    // counted below is a statement that would read the whole table at any size.
    let db = pool.connect_options();
    let database = db.get_database().unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" SET enable_seqscan = off"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE linkrunner.attributed_users")
        .execute(&pool)
        .await
        .unwrap();
    let campaigns = sim.campaigns();
    for (i, c) in campaigns.iter().take(2).enumerate() {
        signup(
            &server,
            c,
            &format!("history-install-{i}"),
            &format!("history-{i}"),
        )
        .await;
    }
    // The signups' email, in another spelling; this session reads nothing of the table
    // before the figures are taken, so none of its own scans can land among them.
    let email = "late@example.net";
    let before = reads(&pool).await;

    assert!(output(sync()).await.status.success(), "the incremental run");
    let looked_up = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attribution_results
         WHERE lookup_kind = 'user_id' AND lookup_value LIKE 'history-%'",
    )
    .await;
    assert_eq!(
        looked_up, 2,
        "the new rows' ids were looked up from the queue"
    );
    let status = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
        cmd.arg("status").args(args).env("DATABASE_URL", &url);
        cmd
    };
    assert!(output(status(&[])).await.status.success());
    assert!(output(status(&["--format", "json"])).await.status.success());
    let mut forget = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    forget
        .args(["forget", "--email", " LATE@Example.NET"])
        .env("DATABASE_URL", &url)
        .stdin(std::process::Stdio::null());
    let forgotten = output(forget).await;
    assert!(forgotten.status.success(), "{forgotten:?}");

    let after = reads(&pool).await;
    assert_eq!(
        after.0 - before.0,
        0,
        "sequential scans of attributed_users by a run, status or forget"
    );
    // An index walked over a whole campaign, or over every row, would give back hundreds.
    let stored = count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await;
    let read = after.1 - before.1;
    assert!(
        read < stored / 20,
        "index entries read: {read}, of {stored} rows"
    );
    let gone = "SELECT count(*) FROM linkrunner.attributed_users WHERE user_email = $1";
    let left: i64 = sqlx::query_scalar(gone)
        .bind(email)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "forget found the person through the email's index");
    let stored = count(&pool, "SELECT count(*) FROM linkrunner.forgotten_rows").await;
    assert_eq!(stored, 2, "both signups were stored, then forgotten");
}

#[sqlx::test]
async fn kept_row_counts_equal_the_rows_through_writes_forgets_and_compaction(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(312)).await;
    let url = database_url(&pool.connect_options());
    let sync = || sync_command(&url, &server.base_url(), "sim-key");
    assert!(output(sync()).await.status.success());
    let (counted, kept) = counts(&pool).await;
    assert!(!counted.is_empty());
    assert_same(
        &counted,
        &kept,
        "rows counted and kept per campaign, after the backfill",
    );

    // Upserts (a rescan re-reads every row), new rows, and a forget between runs, before the
    // next run folds the deltas.
    let c = sim.campaigns()[0].clone();
    signup(&server, &c, "history-count-install", "history-count").await;
    let mut rescan = sync();
    rescan.arg("--rescan");
    assert!(output(rescan).await.status.success());
    let mut forget = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    forget
        .args(["forget", "--user-id", "history-count"])
        .env("DATABASE_URL", &url)
        .stdin(std::process::Stdio::null());
    assert!(output(forget).await.status.success());
    let deltas = count(&pool, "SELECT count(*) FROM linkrunner.campaign_row_counts").await;
    let (counted, kept) = counts(&pool).await;
    assert_same(
        &counted,
        &kept,
        "rows counted and kept per campaign, before the run folds the deltas",
    );

    assert!(output(sync()).await.status.success());
    let (counted, kept) = counts(&pool).await;
    assert_same(
        &counted,
        &kept,
        "rows counted and kept per campaign, after the run",
    );
    let folded = count(&pool, "SELECT count(*) FROM linkrunner.campaign_row_counts").await;
    assert!(
        folded <= deltas,
        "a run folds the deltas: {folded} rows after, {deltas} before"
    );
    let distinct = count(
        &pool,
        "SELECT count(DISTINCT campaign_display_id) FROM linkrunner.campaign_row_counts",
    )
    .await;
    assert_eq!(folded, distinct, "one row per campaign after a run");
}
