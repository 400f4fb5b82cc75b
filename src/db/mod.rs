//! Postgres: connecting, migrations, the run lock and the writers.

pub mod campaigns;
pub mod rows;
pub mod state;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Advisory lock key shared by every sync against one database ("lrsync" in ASCII).
const LOCK_KEY: i64 = 0x6c72_7379_6e63;

/// Reads a database URL, with an error that never repeats the URL (it may hold a password).
pub fn connect_options(url: &SecretString) -> Result<PgConnectOptions, String> {
    PgConnectOptions::from_str(url.expose_secret())
        .map(|o| {
            o.application_name("linkrunner-sync")
                .options([("statement_timeout", "300s"), ("timezone", "UTC")])
        })
        .map_err(|_| {
            "DATABASE_URL is not a valid Postgres URL (expected postgres://user@host:port/db)"
                .to_string()
        })
}

/// Connects, failing fast when the server is not there.
pub async fn connect(options: PgConnectOptions, max: u32) -> anyhow::Result<PgPool> {
    let target = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to Postgres at {target}"))
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations failed")
}

/// Holds the run lock for as long as it lives (the session keeps it).
pub struct RunLock(#[allow(dead_code)] sqlx::PgConnection);

/// Takes the run lock, or returns None when another run holds it.
pub async fn try_lock(pool: &PgPool) -> anyhow::Result<Option<RunLock>> {
    let mut conn = pool
        .acquire()
        .await
        .context("taking a database connection")?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .context("taking the run lock")?;
    // Detach so the pool never hands this session (and its lock) to anyone else; it closes,
    // releasing the lock, when RunLock is dropped or the process dies.
    Ok(got.then(|| RunLock(conn.detach())))
}
