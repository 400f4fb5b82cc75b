//! Postgres as it is deployed: other sessions holding locks on the job's tables.

use std::time::Duration;

use crate::common::*;
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
    let mut cmd = sync_command(&database_url(&db), &server.base_url(), "sim-key");
    cmd.args(["--lock-timeout", "1s"]);
    // Without the lock timeout the run would wait for the lock until the 300 s statement limit.
    let out = tokio::time::timeout(Duration::from_secs(120), output(cmd))
        .await
        .expect("the run gave up waiting for the lock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lock timeout"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
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

#[sqlx::test]
async fn status_waits_for_a_lock_no_longer_than_its_lock_timeout(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (_sim, server) = start(SimConfig::small(42)).await;
    sync::run(&sync_config(&server, "UTC"), &pool)
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect_with(&db).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE linkrunner.sync_runs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let status = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
        cmd.arg("status")
            .args(extra)
            .env("DATABASE_URL", database_url(&db))
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        cmd
    };
    // Without a deadline status would wait for as long as the lock is held.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        output(status(&["--lock-timeout", "1s"])),
    )
    .await
    .expect("status still waiting for the lock after 60 s");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lock timeout"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    tx.rollback().await.unwrap();
    let out = output(status(&[])).await;
    assert!(out.status.success(), "{out:?}");
}

/// A login role of this test run: roles belong to the whole server, so the names are unique.
async fn role(pool: &sqlx::PgPool, kind: &str) -> String {
    let name = format!("lr_{kind}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE ROLE {name} LOGIN"))
        .execute(pool)
        .await
        .unwrap();
    name
}

/// The database URL of `db`, as `user`.
fn url_as(db: &PgConnectOptions, user: &str) -> String {
    let url = database_url(db);
    let (_, rest) = url.split_once("://").unwrap();
    let (_, host_and_db) = rest.split_once('@').unwrap();
    format!("postgres://{user}@{host_and_db}")
}

#[sqlx::test(migrations = false)]
async fn an_owner_migrates_and_a_role_with_table_grants_alone_syncs(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let admin = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let database = db.get_database().unwrap().to_owned();
    let (owner, etl) = (role(&admin, "owner").await, role(&admin, "etl").await);
    // The grants of docs/deployment.md ("Least privilege"), word for word.
    let grants = format!("GRANT CREATE ON DATABASE \"{database}\" TO {owner};");
    sqlx::raw_sql(&grants).execute(&admin).await.unwrap();
    let (sim, server) = start(SimConfig::small(42)).await;

    // Migrations pending: the job's role cannot apply them, says so, and changes nothing.
    let out = output(sync_command(
        &url_as(&db, &etl),
        &server.base_url(),
        "sim-key",
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("lacks privileges"), "{stderr}");
    let schema: Option<String> = sqlx::query_scalar("SELECT to_regnamespace('linkrunner')::text")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(schema, None);

    let mut migrate = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    migrate
        .arg("migrate")
        .env("DATABASE_URL", url_as(&db, &owner))
        .env("RUST_LOG", "warn");
    let out = output(migrate).await;
    assert!(out.status.success(), "{out:?}");
    let etl_grants = format!(
        "GRANT USAGE ON SCHEMA linkrunner TO {etl};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA linkrunner TO {etl};"
    );
    sqlx::raw_sql(&etl_grants).execute(&admin).await.unwrap();
    let privileged: (bool, bool) = sqlx::query_as(
        "SELECT rolsuper, has_database_privilege($1, current_database(), 'CREATE')
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(&etl)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        privileged,
        (false, false),
        "no superuser, no CREATE on the database"
    );

    let mut sync = sync_command(&url_as(&db, &etl), &server.base_url(), "sim-key");
    sync.args(["--attribution-details"]);
    // One Reporting API request: the simulator allows one a minute.
    sync.args(["--reporting", "--reporting-timezone", "Asia/Kolkata"]);
    sync.args(["--reporting-max-requests", "1"]);
    let out = output(sync).await;
    assert!(out.status.success(), "{out:?}");
    assert_exact(&admin, &sim).await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM linkrunner.reporting_days WHERE read_at IS NOT NULL"
        )
        .await,
        1
    );
    assert!(
        count(
            &admin,
            "SELECT count(*) FROM linkrunner.attribution_results"
        )
        .await
            > 0
    );
    let out = output(sync_command(
        &url_as(&db, &etl),
        &server.base_url(),
        "sim-key",
    ))
    .await;
    assert!(out.status.success(), "a second run: {out:?}");

    admin.close().await;
    let cleanup = PgPoolOptions::new().connect_with(db).await.unwrap();
    for role in [etl, owner] {
        sqlx::raw_sql(&format!("DROP OWNED BY {role} CASCADE; DROP ROLE {role}"))
            .execute(&cleanup)
            .await
            .unwrap();
    }
}
