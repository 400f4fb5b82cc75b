//! A key of another project pointed at a warehouse: the guard against a list that would mark
//! most of the stored campaigns deleted.

use crate::common::*;
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

/// A project of its own: a simulator with its own key and data, and the command syncing it into
/// `schema`.
async fn project(seed: u64, key: &str) -> (linkrunner_sim::Simulator, linkrunner_sim::SimServer) {
    start(SimConfig {
        api_key: key.into(),
        faults: linkrunner_sim::Faults {
            // Slow enough that two runs overlap.
            latency: std::time::Duration::from_millis(5),
            ..Default::default()
        },
        ..SimConfig::small(seed)
    })
    .await
}

fn sync_into(
    db: &PgConnectOptions,
    server: &linkrunner_sim::SimServer,
    key: &str,
    schema: &str,
) -> std::process::Command {
    let mut cmd = sync_command(&database_url(db), &server.base_url(), key);
    cmd.args(["--schema", schema]);
    cmd
}

fn command(db: &PgConnectOptions, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    cmd.args(args)
        .env("DATABASE_URL", database_url(db))
        .env("RUST_LOG", "warn");
    cmd
}

async fn schemas(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace
         WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema')
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn two_projects_sync_into_two_schemas_of_one_database_at_once(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (a, server_a) = project(41, "key-of-a").await;
    let (b, server_b) = project(42, "key-of-b").await;

    // B also looks its users up, so every statement of the job meets a schema of its own.
    let mut sync_b = sync_into(&db, &server_b, "key-of-b", "project_b");
    sync_b.arg("--attribution-details");
    let (out_a, out_b) = tokio::join!(
        output(sync_into(&db, &server_a, "key-of-a", "project_a")),
        output(sync_b),
    );
    assert!(out_a.status.success(), "{out_a:?}");
    assert!(out_b.status.success(), "{out_b:?}");
    assert_exact_in(&pool, &a, "project_a").await;
    assert_exact_in(&pool, &b, "project_b").await;
    assert_eq!(schemas(&pool).await, ["project_a", "project_b"]);
    let looked_up = count(&pool, "SELECT count(*) FROM project_b.attribution_results").await;
    assert!(looked_up > 0);
    for schema in ["project_a", "project_b"] {
        let deleted = count(
            &pool,
            &format!("SELECT count(*) FROM {schema}.campaigns WHERE deleted_at IS NOT NULL"),
        )
        .await;
        assert_eq!(
            deleted, 0,
            "{schema}: the other project's run marked nothing"
        );
    }

    // The lock is per schema: while A's is held, B runs and A refuses to overlap.
    let mut holder = pool.acquire().await.unwrap();
    let held: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(x'6c727379'::int, hashtext('project_a'))")
            .fetch_one(&mut *holder)
            .await
            .unwrap();
    assert!(held);
    let out = output(sync_into(&db, &server_b, "key-of-b", "project_b")).await;
    assert!(out.status.success(), "{out:?}");
    let out = output(sync_into(&db, &server_a, "key-of-a", "project_a")).await;
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds the lock"),
        "{out:?}"
    );
    drop(holder);

    // Each schema keeps its own history and ledger, and status reads the one it is given.
    for (schema, sim) in [("project_a", &a), ("project_b", &b)] {
        let out = output(command(
            &db,
            &["status", "--format", "json", "--schema", schema],
        ))
        .await;
        assert!(out.status.success(), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut shown: Vec<&str> = json["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["display_id"].as_str().unwrap())
            .collect();
        shown.sort();
        let mut expected: Vec<String> = sim
            .campaigns()
            .iter()
            .map(|c| c["display_id"].as_str().unwrap().to_owned())
            .collect();
        expected.sort();
        assert_eq!(shown, expected, "{schema}");
        let history = count(
            &pool,
            &format!("SELECT count(*) FROM {schema}.schema_migrations"),
        )
        .await;
        assert_eq!(history, linkrunner_sync::db::MIGRATOR.iter().count() as i64);
    }
}

#[sqlx::test(migrations = false)]
async fn migrate_and_the_dry_run_take_the_schema(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (_sim, server) = start(SimConfig::small(43)).await;

    // The dry run of a schema not made yet looks and creates nothing.
    let mut dry = sync_into(&db, &server, "sim-key", "project_new");
    dry.arg("--dry-run");
    let out = output(dry).await;
    assert!(out.status.success(), "{out:?}");
    assert!(schemas(&pool).await.is_empty());

    let out = output(command(&db, &["migrate", "--schema", "project_new"])).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "migrations applied to schema project_new"
    );
    assert_eq!(schemas(&pool).await, ["project_new"]);
    // The environment variable names it too, and the views came along.
    let mut status = command(&db, &["status"]);
    status.env("LINKRUNNER_SCHEMA", "project_new");
    let out = output(status).await;
    assert!(out.status.success(), "{out:?}");
    let views = count(
        &pool,
        "SELECT count(*) FROM pg_views WHERE schemaname = 'project_new'",
    )
    .await;
    assert!(views > 0);
}

#[sqlx::test(migrations = false)]
async fn a_schema_name_that_is_not_plain_is_refused_before_anything(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (sim, server) = start(SimConfig::small(44)).await;
    for name in [
        "Project_A",
        "app-2",
        "a\"; DROP TABLE x; --",
        "",
        "public",
        "pg_toast",
        "information_schema",
        &"a".repeat(64),
    ] {
        for args in [
            vec!["migrate", "--schema", name],
            vec!["status", "--schema", name],
        ] {
            let out = output(command(&db, &args)).await;
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        }
        let out = output(sync_into(&db, &server, "sim-key", name)).await;
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--schema"), "{stderr}");
    }
    assert!(schemas(&pool).await.is_empty());
    assert_eq!(sim.stats().campaigns_requests, 0, "refused before the API");
}

/// `sql/daily_signups_across_projects.sql` against two projects synced into `app_one` and
/// `app_two`: each project's signups per campaign and New York day, none mixed with the other's.
#[sqlx::test(migrations = false)]
async fn the_example_across_projects_counts_each_projects_own_signups(pool: PgPool) {
    use chrono::{DateTime, NaiveDate};
    use std::collections::BTreeMap;

    type Days = BTreeMap<(String, NaiveDate, String), i64>;
    let mut want = Days::new();
    for (seed, schema) in [(45, "app_one"), (46, "app_two")] {
        let (sim, server) = start(SimConfig::small(seed)).await;
        let config = linkrunner_sync::config::SyncConfig {
            schema: linkrunner_sync::db::Schema::parse(schema).unwrap(),
            ..sync_config(&server, "UTC")
        };
        let report = sync::run(&config, &pool).await.unwrap();
        assert_eq!(report.outcome, Outcome::Success);
        assert_exact_in(&pool, &sim, schema).await;
        for row in sim.all_attributed_users() {
            let at = DateTime::parse_from_rfc3339(row["attributed_at"].as_str().unwrap()).unwrap();
            let day = at.with_timezone(&chrono_tz::America::New_York).date_naive();
            let campaign = row["campaign_display_id"].as_str().unwrap().to_owned();
            *want.entry((schema.to_owned(), day, campaign)).or_default() += 1;
        }
    }
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sql/daily_signups_across_projects.sql"),
    )
    .unwrap();
    let rows: Vec<(String, NaiveDate, String, Option<String>, i64)> =
        sqlx::query_as(&sql).fetch_all(&pool).await.unwrap();
    let got: Days = rows
        .iter()
        .map(|(p, day, c, _, n)| ((p.clone(), *day, c.clone()), *n))
        .collect();
    assert_eq!(
        got.len(),
        rows.len(),
        "one row per project, day and campaign"
    );
    assert_eq!(got, want);
    assert!(
        rows.iter().all(|r| r.3.is_some()),
        "every campaign is named"
    );
}
