//! A key of another project pointed at a warehouse: the guard against a list that would mark
//! most of the stored campaigns deleted.

mod common;

use common::*;
use linkrunner_sim::SimConfig;
use linkrunner_sync::error::{code, Failure};
use linkrunner_sync::model::run::Outcome;
use linkrunner_sync::sync;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// What the warehouse holds: campaigns, those marked deleted, attributed users.
async fn holdings(pool: &PgPool) -> (i64, i64, i64) {
    (
        count(pool, "SELECT count(*) FROM linkrunner.campaigns").await,
        count(
            pool,
            "SELECT count(*) FROM linkrunner.campaigns WHERE deleted_at IS NOT NULL",
        )
        .await,
        count(pool, "SELECT count(*) FROM linkrunner.attributed_users").await,
    )
}

#[sqlx::test]
async fn another_projects_key_stores_nothing_and_exits_7(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (a, server_a) = start(SimConfig::small(31)).await;
    let (b, server_b) = start(SimConfig::small(32)).await;
    sync::run(&sync_config(&server_a, "UTC"), &pool)
        .await
        .unwrap();
    assert_exact(&pool, &a).await;
    let before = holdings(&pool).await;
    assert_eq!(before.1, 0);

    // Project B's key: none of A's campaigns in its list.
    let err = sync::run(&sync_config(&server_b, "UTC"), &pool)
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::OtherProject(_)), "{err:?}");
    assert!(err.to_string().contains("--accept-deletions"), "{err}");
    assert_eq!(
        holdings(&pool).await,
        before,
        "nothing stored, nothing marked"
    );
    assert_eq!(
        b.stats().attributed_users_requests,
        0,
        "no campaign of B was read"
    );
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outcome, "failed");

    // The dry run stops as the run would.
    let mut dry = sync_command(&database_url(&db), &server_b.base_url(), "sim-key");
    dry.arg("--dry-run");
    let out = output(dry).await;
    assert_eq!(
        out.status.code(),
        Some(i32::from(code::OTHER_PROJECT)),
        "{out:?}"
    );

    // The command line: one line, its own exit code.
    let out = output(sync_command(
        &database_url(&db),
        &server_b.base_url(),
        "sim-key",
    ))
    .await;
    assert_eq!(
        out.status.code(),
        Some(i32::from(code::OTHER_PROJECT)),
        "{out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("seems to belong to another project"),
        "{stderr}"
    );
    assert_eq!(holdings(&pool).await, before);

    // Deletions that are real are accepted when asked to.
    let mut accept = sync_command(&database_url(&db), &server_b.base_url(), "sim-key");
    accept.arg("--accept-deletions");
    let out = output(accept).await;
    assert!(out.status.success(), "{out:?}");
    let (campaigns, deleted, _) = holdings(&pool).await;
    assert_eq!(deleted, before.0, "every campaign of A is marked deleted");
    assert_eq!(campaigns, before.0 + b.campaigns().len() as i64);
}

#[sqlx::test]
async fn a_real_deletion_or_a_list_of_some_campaigns_passes(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(33)).await;
    let config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();

    // One campaign of eight deleted in the dashboard: far below half.
    let gone = sim.campaigns()[0]["display_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = reqwest::Client::new()
        .delete(format!("{}/campaigns/{gone}", server.base_url()))
        .header("linkrunner-key", "sim-key")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    let report = sync::run(&config, &pool).await.unwrap();
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(holdings(&pool).await.1, 1);

    // A run of chosen campaigns marks no deletions, so it is not judged.
    let other = start(SimConfig::small(34)).await.1;
    let some = sync::run(
        &linkrunner_sync::config::SyncConfig {
            campaigns: vec!["none-of-these".into()],
            ..sync_config(&other, "UTC")
        },
        &pool,
    )
    .await
    .unwrap();
    assert_eq!(some.outcome, Outcome::Success);
    assert_eq!(holdings(&pool).await.1, 1);
}
