//! Postgres behind PgBouncer, as many deployments reach it. In session mode the job works as on
//! a direct connection; in transaction or statement mode its run lock could not hold, so it
//! refuses before any request or write.

use std::process::Output;
use std::time::Duration;

use crate::common::daemons::{pgbouncer, through};
use crate::common::*;
use linkrunner_sim::SimConfig;
use linkrunner_sync::db::schema::Taken;
use linkrunner_sync::db::{self, Schema};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;

fn error_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn command(url: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    cmd.args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn");
    cmd
}

async fn schemas(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'linkrunner'",
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn a_pooler_that_shares_sessions_is_refused_before_any_request_or_write(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (sim, server) = start(SimConfig::small(61)).await;
    for mode in ["transaction", "statement"] {
        let bouncer = pgbouncer(mode);
        let url = through(&database_url(&db), bouncer.port);
        let out = output(sync_command(&url, &server.base_url(), "sim-key")).await;
        let line = error_line(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{mode}: {out:?}\n{}",
            bouncer.log()
        );
        assert_eq!(line.lines().count(), 1, "{mode}: {line}");
        assert!(line.contains("share one database session"), "{line}");
        assert!(line.contains("pool_mode = session"), "{line}");
        for args in [&["migrate"][..], &["status"]] {
            let out = output(command(&url, args)).await;
            assert_eq!(out.status.code(), Some(2), "{mode} {args:?}: {out:?}");
            assert!(error_line(&out).contains("session mode"), "{out:?}");
        }
    }
    assert_eq!(sim.stats().campaigns_requests, 0);
    assert_eq!(schemas(&pool).await, 0, "something was written");

    // The same database directly: the refusal was the pooler's doing.
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
async fn through_a_session_pool_a_run_is_exact_and_a_second_one_is_kept_out(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let mut config = SimConfig::small(62);
    config.faults.latency = Duration::from_millis(40);
    let (sim, server) = start(config).await;
    let bouncer = pgbouncer("session");
    let url = through(&database_url(&db), bouncer.port);

    let first = output(sync_command(&url, &server.base_url(), "sim-key"));
    let second = async {
        wait_for("the first run's lock", Duration::from_secs(30), || async {
            // pg_locks shows every database's locks; other tests hold theirs meanwhile.
            let held = count(
                &pool,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .await;
            (held > 0).then_some(())
        })
        .await;
        output(sync_command(&url, &server.base_url(), "sim-key")).await
    };
    let (first, second) = tokio::join!(first, second);
    assert!(first.status.success(), "{first:?}\n{}", bouncer.log());
    assert_eq!(second.status.code(), Some(5), "{second:?}");
    assert_exact(&pool, &sim).await;

    // The pooler hands the first run's server session on: the lock went with the run.
    let campaigns = sim.campaigns();
    signup(&server, &campaigns[0], "install-after", "user-after").await;
    let third = output(sync_command(&url, &server.base_url(), "sim-key")).await;
    assert!(third.status.success(), "{third:?}");
    assert_exact(&pool, &sim).await;
    let status = output(command(&url, &["status"])).await;
    assert!(status.status.success(), "{status:?}");
}

/// A session may take an advisory lock it already holds; a pooler that passes a session from
/// one client to another would so let two runs share the lock. The job tells it apart.
#[sqlx::test]
async fn a_session_that_already_holds_the_run_lock_is_not_taken_for_a_new_one(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    for name in ["linkrunner", "project_b"] {
        let key = Schema::parse(name).unwrap().lock_key();
        let mut own = sqlx::PgConnection::connect_with(&db).await.unwrap();
        let mut other = sqlx::PgConnection::connect_with(&db).await.unwrap();
        assert_eq!(key.try_lock(&mut own).await.unwrap(), Taken::Now, "{name}");
        assert_eq!(
            key.try_lock(&mut own).await.unwrap(),
            Taken::Already,
            "{name}"
        );
        assert_eq!(
            key.try_lock(&mut other).await.unwrap(),
            Taken::ByAnother,
            "{name}"
        );
        // Found held, it was not taken twice: one unlock frees it.
        assert!(key.unlock(&mut own).await.unwrap());
        assert_eq!(
            key.try_lock(&mut other).await.unwrap(),
            Taken::Now,
            "{name}"
        );
    }

    // A pool handing a run a session that kept the lock, as such a pooler would.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.clone())
        .await
        .unwrap();
    let schema = Schema::parse("linkrunner").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let taken = schema.lock_key().try_lock(&mut conn).await.unwrap();
    assert_eq!(taken, Taken::Now);
    drop(conn);
    let taken = db::try_lock(&pool, &schema, CancellationToken::new()).await;
    let error = taken
        .err()
        .expect("a run took a lock its session already held");
    assert!(
        format!("{error:#}").contains("share one database session"),
        "{error:#}"
    );
}
