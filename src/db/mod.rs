//! Postgres: connecting, migrations, the run lock and the writers.

pub mod batch;
pub mod campaigns;
pub mod rows;
pub mod state;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::error::Failure;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Advisory lock key shared by every sync against one database ("lrsync" in ASCII).
const LOCK_KEY: i64 = 0x6c72_7379_6e63;

/// Reads a database URL, with an error that never repeats the URL (it may hold a password).
pub fn connect_options(url: &SecretString) -> Result<PgConnectOptions, String> {
    let text = url.expose_secret();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(
            "DATABASE_URL must start with postgres:// (e.g. postgres://user@host:5432/db)".into(),
        );
    }
    PgConnectOptions::from_str(text)
        .map(|o| {
            o.application_name("linkrunner-sync")
                // A commit lost to a server crash takes its checkpoint with it, so the next run
                // reads that range again: waiting for each WAL flush buys nothing here.
                .options([
                    ("statement_timeout", "300s"),
                    ("timezone", "UTC"),
                    ("synchronous_commit", "off"),
                ])
        })
        .map_err(|_| {
            "DATABASE_URL is not a valid Postgres URL (expected postgres://user@host:port/db)"
                .to_string()
        })
}

/// Connects, failing fast when the server is not there.
pub async fn connect(options: PgConnectOptions, max: u32) -> Result<PgPool, Failure> {
    let target = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    PgPoolOptions::new()
        .max_connections(max)
        // The pool already pings every connection handed back; a second ping on the way out
        // would cost each statement another round trip.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| failure(e, &format!("cannot connect to Postgres at {target}")))
}

/// Takes a connection of the pool for a run of statements that follow one another: a pool
/// connection handed back is pinged before it can be taken again, so taking one per statement
/// would open a new connection each time.
pub async fn session(pool: &PgPool) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, Failure> {
    pool.acquire()
        .await
        .map_err(|e| failure(e, "taking a database connection"))
}

pub async fn migrate(conn: &mut PgConnection) -> Result<(), Failure> {
    match MIGRATOR.run_direct(conn).await {
        Ok(()) => Ok(()),
        Err(sqlx::migrate::MigrateError::Execute(e)) => {
            Err(failure(e, "applying database migrations"))
        }
        Err(e) => Err(Failure::Transient(
            anyhow::Error::new(e).context("applying database migrations"),
        )),
    }
}

/// Errors worth retrying: the connection went away, or the server is restarting or busy.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("57P")
                || matches!(c.as_ref(), "40001" | "40P01" | "53300")
        }),
        _ => false,
    }
}

/// A database error as the run's failure: the wrong login, database or privileges are
/// configuration; the rest is transient.
pub fn failure(e: sqlx::Error, what: &str) -> Failure {
    if let sqlx::Error::Database(d) = &e {
        let why = match d.code().as_deref() {
            Some("28P01" | "28000") => Some("the server refused the login (check the user and password in DATABASE_URL)"),
            Some("3D000") => Some("the database does not exist (create it, or fix DATABASE_URL)"),
            Some("42501") => Some("the database user lacks privileges (it needs CREATE on the database and ownership of schema linkrunner)"),
            _ => None,
        };
        if let Some(why) = why {
            return Failure::Config(format!("{what}: {why}: {}", d.message()));
        }
    }
    Failure::Transient(anyhow::Error::new(e).context(what.to_owned()))
}

/// Holds the run lock while it lives. A watchdog pings the lock's session; if the session dies
/// (a dropped connection, a restarted server) it takes the lock again, and if another run got
/// there first it cancels `halt`, so this run stops at its next safe point.
pub struct RunLock {
    task: Option<tokio::task::JoinHandle<()>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
    lost: Arc<AtomicBool>,
}

impl RunLock {
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Frees the lock now, so a run that follows at once can take it.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Dropping the task drops its connection, which ends the session and frees the lock.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Takes the run lock, or returns None when another run holds it.
pub async fn try_lock(pool: &PgPool, halt: CancellationToken) -> anyhow::Result<Option<RunLock>> {
    let Some(mut conn) = lock_session(pool).await? else {
        return Ok(None);
    };
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let pool = pool.clone();
    let (release, mut released) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut released => {
                    // Unlock before closing: a closing session frees its locks only once the
                    // server has wound it down, which a run started right after could race.
                    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(LOCK_KEY)
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            if sqlx::query("SELECT 1").execute(&mut conn).await.is_ok() {
                continue;
            }
            match lock_session(&pool).await {
                Ok(Some(again)) => {
                    tracing::warn!("the run lock's database session died; lock taken again");
                    conn = again;
                }
                Ok(None) => {
                    tracing::error!("the run lock was lost to another run; stopping");
                    flag.store(true, Ordering::Relaxed);
                    halt.cancel();
                    return;
                }
                Err(_) => {} // Database still away: nobody else can take the lock either.
            }
        }
    });
    Ok(Some(RunLock {
        task: Some(task),
        release: Some(release),
        lost,
    }))
}

/// A session of its own (never returned to the pool) holding the advisory lock.
async fn lock_session(pool: &PgPool) -> anyhow::Result<Option<PgConnection>> {
    let mut conn = pool
        .acquire()
        .await
        .context("taking a database connection")?
        .detach();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .context("taking the run lock")?;
    Ok(got.then_some(conn))
}
