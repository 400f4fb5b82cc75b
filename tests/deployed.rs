//! Postgres as it is deployed: other sessions holding locks on the job's tables.

mod common;

use std::time::{Duration, Instant};

use common::*;
use linkrunner_sim::SimConfig;
use linkrunner_sync::sync;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Connection;

#[sqlx::test]
async fn a_lock_held_elsewhere_ends_the_run_within_the_lock_timeout(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (sim, server) = start(SimConfig::small(41)).await;
    sync::run(&sync_config(&server, "UTC"), &pool)
        .await
        .unwrap();
    let campaigns = sim.campaigns();
    signup(&server, &campaigns[0], "install-late", "late-user").await;

    // Another session holds the campaigns table, as a long migration or a careless LOCK would.
    let mut holder = sqlx::PgConnection::connect_with(&db).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE linkrunner.campaigns IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = Instant::now();
    let mut cmd = sync_command(&database_url(&db), &server.base_url(), "sim-key");
    cmd.args(["--lock-timeout", "1s"]);
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lock timeout"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ended after {:?}",
        started.elapsed()
    );
    tx.rollback().await.unwrap();

    // Nothing half-written: the next run completes the warehouse exactly.
    let out = output(sync_command(
        &database_url(&db),
        &server.base_url(),
        "sim-key",
    ))
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_exact(&pool, &sim).await;
}
