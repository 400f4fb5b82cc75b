//! Postgres: connecting, migrations, the run lock and the writers.

pub mod campaigns;
pub mod columns;
pub mod forget;
pub mod lookups;
pub mod migrate;
pub mod personal;
pub mod reporting;
pub mod schema;
pub mod state;
pub mod status;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool, Postgres};
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

pub use migrate::{migrate, prepare, MIGRATOR};
pub use schema::Schema;

use schema::{LockKey, Taken};

/// Where the job connects, and what each of its sessions is set to. The settings are applied
/// by a statement once connected, not sent at startup: PgBouncer refuses startup parameters it
/// does not know.
#[derive(Clone, Debug)]
pub struct Target {
    pub options: PgConnectOptions,
    settings: Vec<(&'static str, String)>,
}

impl Target {
    /// Sets `name` to `value` in every session, replacing an earlier value.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Target {
        self.settings.retain(|(n, _)| *n != name);
        self.settings.push((name, value.into()));
        self
    }

    /// One statement that applies the settings, in the simple protocol: a pooler in
    /// transaction mode must be told apart before any prepared statement (see
    /// [`check_sessions_are_own`]).
    fn settings_sql(&self) -> String {
        let calls: Vec<String> = self
            .settings
            .iter()
            .map(|(name, value)| format!("set_config({}, {}, false)", quote(name), quote(value)))
            .collect();
        format!("SELECT {}", calls.join(", "))
    }
}

/// A string literal; every value here is the job's own, but none is trusted to be plain.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Reads a database URL, with an error that never repeats the URL (it may hold a password).
pub fn connect_options(url: &SecretString) -> Result<Target, String> {
    let text = url.expose_secret();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(
            "DATABASE_URL must start with postgres:// (e.g. postgres://user@host:5432/db)".into(),
        );
    }
    let options = PgConnectOptions::from_str(text)
        .map(|o| {
            o.application_name("linkrunner-sync")
                // Binary results need no extra digits, and PgBouncer refuses the parameter.
                .extra_float_digits(None)
                // A statement that ends in an error says so in the run's own one line; a slow one
                // is for debugging, and its SQL is no operator's business.
                .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1))
        })
        .map_err(|_| {
            "DATABASE_URL is not a valid Postgres URL (expected postgres://user@host:port/db)"
                .to_string()
        })?;
    check_tls_files(text)?;
    let target = Target {
        options,
        settings: Vec::new(),
    };
    // A commit lost to a server crash takes its checkpoint with it, so the next run reads that
    // range again: waiting for each WAL flush buys nothing here.
    Ok(target
        .with("statement_timeout", "300s")
        .with("TimeZone", "UTC")
        .with("synchronous_commit", "off"))
}

/// Checks that the certificate and key files named in the URL, or in the `PGSSL*` variables
/// the driver reads, can be read: the driver would only say "No such file or directory".
fn check_tls_files(url: &str) -> Result<(), String> {
    let named = url::Url::parse(url).map_err(|_| "DATABASE_URL is not a valid URL".to_string())?;
    let mut files: Vec<(String, String)> = named
        .query_pairs()
        .filter(|(key, _)| {
            matches!(
                key.as_ref(),
                "sslrootcert"
                    | "ssl-root-cert"
                    | "ssl-ca"
                    | "sslcert"
                    | "ssl-cert"
                    | "sslkey"
                    | "ssl-key"
            )
        })
        .map(|(key, value)| (format!("DATABASE_URL's {key}"), value.into_owned()))
        .collect();
    for name in ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"] {
        if let Ok(value) = std::env::var(name) {
            files.push((name.to_string(), value));
        }
    }
    // A value may also be the certificate itself.
    for (what, path) in files
        .into_iter()
        .filter(|(_, v)| !v.starts_with("-----BEGIN"))
    {
        if let Err(e) = std::fs::File::open(&path) {
            return Err(format!(
                "{what} names a file that cannot be read ({path}: {e})"
            ));
        }
    }
    Ok(())
}

/// Connects, failing fast when the server is not there, and refuses sessions that are not the
/// job's own.
pub async fn connect(target: Target, max: u32) -> anyhow::Result<PgPool> {
    let options = &target.options;
    let place = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    let settings = Arc::new(target.settings_sql());
    let pool = PgPoolOptions::new()
        .max_connections(max.max(SESSION_PROBES))
        // The pool already pings every connection handed back; a second ping on the way out
        // would cost each statement another round trip.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                // A query without arguments goes in the simple protocol.
                conn.execute(settings.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(target.options)
        .await
        .with_context(|| format!("cannot connect to Postgres at {place}"))?;
    check_sessions_are_own(&pool)
        .await
        .with_context(|| format!("checking the sessions of Postgres at {place}"))?;
    Ok(pool)
}

/// How many connections the check of sessions holds at once.
const SESSION_PROBES: u32 = 3;

/// A pooler that lends one server session to many clients (PgBouncer in transaction or
/// statement mode) would let two runs share the run lock, and loses prepared statements.
#[derive(Debug, thiserror::Error)]
#[error("two connections of this job share one database session: {0}")]
pub struct SharedSession(&'static str);

/// Holds a few connections at once and asks each for its server process: each must have its
/// own. Behind a transaction-mode pooler, a statement goes to whichever server session is idle,
/// which is the one the previous statement just left, so the same process answers twice.
async fn check_sessions_are_own(pool: &PgPool) -> anyhow::Result<()> {
    let mut held = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..SESSION_PROBES {
        let mut conn = pool.acquire().await?;
        let row = sqlx::raw_sql("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        let pid: i32 = sqlx::Row::try_get(&row, 0)?;
        if pids.contains(&pid) {
            return Err(SharedSession("a connection pooler in transaction mode?").into());
        }
        pids.push(pid);
        held.push(conn);
    }
    Ok(())
}

/// Takes a connection of the pool for a run of statements that follow one another: a pool
/// connection handed back is pinged before it can be taken again, so taking one per statement
/// would open a new connection each time.
pub async fn session(pool: &PgPool) -> anyhow::Result<PoolConnection<Postgres>> {
    pool.acquire().await.context("taking a database connection")
}

/// A pooled connection kept for many statements: taken on first use, and again after an error.
/// A connection handed back is pinged before it can be taken again, so borrowing one per
/// statement would open a new session almost every time.
pub struct KeptSession {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl KeptSession {
    pub fn new(pool: PgPool) -> KeptSession {
        KeptSession { pool, conn: None }
    }

    /// Takes the connection now; a failure is left for the first statement to report.
    pub async fn connect(&mut self) {
        if self.conn.is_none() {
            self.conn = self.pool.acquire().await.ok();
        }
    }

    /// Runs `f` on the connection; after an error it is dropped, so the next use starts on a
    /// fresh one.
    pub async fn run<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> sqlx::Result<T> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.pool.acquire().await?),
        };
        let result = f(conn).await;
        if result.is_err() {
            self.conn = None;
        }
        result
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

/// Whether Postgres refused a value itself (a number past `numeric`, a time past its range,
/// an index entry too large): the same item fails the same way every time.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => is_data_error_code(d.code().as_deref()),
        _ => false,
    }
}

fn is_data_error_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("22") || c.starts_with("54"))
}

/// The items Postgres refuses to store, by index, with its message. Each is written by `write`
/// in a savepoint that is rolled back, so nothing is stored: slow, and only for what a refusal
/// already failed, to find the items that caused it.
pub async fn refused<T>(
    conn: &mut PgConnection,
    items: &[T],
    write: impl for<'c> Fn(&'c mut PgConnection, &'c T) -> BoxFuture<'c, sqlx::Result<()>>,
) -> sqlx::Result<Vec<(usize, String)>> {
    let mut trial = conn.begin().await?;
    let mut refused = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut one = trial.begin().await?;
        match write(&mut one, item).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(d)) if is_data_error_code(d.code().as_deref()) => {
                refused.push((i, d.message().to_owned()));
            }
            Err(e) => return Err(e),
        }
        one.rollback().await?;
    }
    trial.rollback().await?;
    Ok(refused)
}

/// Holds the run lock while it lives, on the session the run's own statements use (its
/// migrations, ledger, campaign list and checkpoints), so a run opens one connection for both.
/// A watchdog pings that session between statements; if it dies (a dropped connection, a
/// restarted server) it takes the lock again on a new one, and if another run got there first it
/// cancels `halt`, so this run stops at its next safe point.
pub struct RunLock {
    conn: Arc<Mutex<PgConnection>>,
    pool: PgPool,
    halt: CancellationToken,
    watchdog: Watchdog,
    release: tokio::sync::oneshot::Sender<()>,
    lost: Arc<AtomicBool>,
    key: LockKey,
    /// What the lock guards, as log lines name it.
    name: &'static str,
}

/// Stops the watchdog when dropped; its handle on the session then goes, which ends the session
/// and frees the lock even when the run never got to release it.
struct Watchdog(tokio::task::JoinHandle<()>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RunLock {
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The run's session. Hold it only for a run of statements: the watchdog waits meanwhile.
    pub async fn session(&self) -> MutexGuard<'_, PgConnection> {
        self.conn.lock().await
    }

    /// The run's session, replaced first when it broke, so the ledger is recorded all the same.
    /// Should the lock have gone to another run meanwhile, the session is a plain one: this run
    /// is stopping, and its ledger row is its own.
    pub async fn live_session(&self) -> anyhow::Result<MutexGuard<'_, PgConnection>> {
        let mut conn = self.conn.lock().await;
        match keep(&mut conn, &self.pool, &self.key).await {
            Ok(true) => {}
            Ok(false) => {
                lose(self.name, &self.lost, &self.halt);
                *conn = plain_session(&self.pool).await?;
            }
            Err(e) => return Err(e.context("taking a database connection")),
        }
        Ok(conn)
    }

    /// Frees the lock now, so a run that follows at once can take it.
    pub async fn release(self) {
        let RunLock {
            conn,
            release,
            mut watchdog,
            lost,
            key,
            ..
        } = self;
        let _ = release.send(());
        let _ = (&mut watchdog.0).await;
        drop(watchdog);
        let Ok(conn) = Arc::try_unwrap(conn) else {
            return;
        };
        let mut conn = conn.into_inner();
        // Unlock before closing: a closing session frees its locks only once the server has
        // wound it down, which a run started right after could race.
        if !lost.load(Ordering::Relaxed) {
            let _ = key.unlock(&mut conn).await;
        }
        let _ = conn.close().await;
    }
}

fn lose(name: &str, lost: &AtomicBool, halt: &CancellationToken) {
    tracing::error!("the {name} was lost to another run; stopping");
    lost.store(true, Ordering::Relaxed);
    halt.cancel();
}

/// Takes `schema`'s run lock, or returns None when another run holds it.
pub async fn try_lock(
    pool: &PgPool,
    schema: &Schema,
    halt: CancellationToken,
) -> anyhow::Result<Option<RunLock>> {
    take(pool, schema.lock_key(), "run lock", halt).await
}

/// Takes `schema`'s reporting lock, which only runs reading the Reporting API take: a run goes
/// on reading it after it let the run lock go, and the next run must not read it meanwhile.
pub async fn try_lock_reporting(
    pool: &PgPool,
    schema: &Schema,
    halt: CancellationToken,
) -> anyhow::Result<Option<RunLock>> {
    take(pool, schema.reporting_lock_key(), "reporting lock", halt).await
}

async fn take(
    pool: &PgPool,
    key: LockKey,
    name: &'static str,
    halt: CancellationToken,
) -> anyhow::Result<Option<RunLock>> {
    let conn = lock_session(pool, &key)
        .await
        .with_context(|| format!("taking the {name}"))?;
    let Some(conn) = conn else {
        return Ok(None);
    };
    let conn = Arc::new(Mutex::new(conn));
    let lost = Arc::new(AtomicBool::new(false));
    let (release, mut released) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let (conn, pool, lost, halt) = (conn.clone(), pool.clone(), lost.clone(), halt.clone());
        let key = key.clone();
        async move {
            loop {
                tokio::select! {
                    _ = &mut released => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                match keep(&mut *conn.lock().await, &pool, &key).await {
                    Ok(true) => {}
                    Ok(false) => return lose(name, &lost, &halt),
                    Err(e) if e.is::<SharedSession>() => return lose(name, &lost, &halt),
                    Err(_) => {} // Database still away: nobody else can take the lock either.
                }
            }
        }
    });
    Ok(Some(RunLock {
        conn,
        pool: pool.clone(),
        halt,
        watchdog: Watchdog(task),
        release,
        lost,
        key,
        name,
    }))
}

/// Pings the lock's session and, when it died, takes the lock again on a new one; false when
/// another session holds the lock now.
async fn keep(conn: &mut PgConnection, pool: &PgPool, key: &LockKey) -> anyhow::Result<bool> {
    if conn.ping().await.is_ok() {
        return Ok(true);
    }
    let Some(again) = lock_session(pool, key).await? else {
        return Ok(false);
    };
    tracing::warn!("the run lock's database session died; lock taken again");
    *conn = again;
    Ok(true)
}

/// A session of its own, never returned to the pool.
async fn plain_session(pool: &PgPool) -> anyhow::Result<PgConnection> {
    session(pool).await.map(|c| c.detach())
}

/// A session of its own holding the advisory lock, or None when another session holds it.
async fn lock_session(pool: &PgPool, key: &LockKey) -> anyhow::Result<Option<PgConnection>> {
    let mut conn = pool.acquire().await?.detach();
    match key.try_lock(&mut conn).await? {
        Taken::Now => Ok(Some(conn)),
        Taken::ByAnother => Ok(None),
        // A new session cannot hold it unless it is another client's, lent by a pooler.
        Taken::Already => Err(SharedSession("the new session already held the lock").into()),
    }
}
