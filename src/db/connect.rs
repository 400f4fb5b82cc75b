//! Connecting: the URL read, the sessions checked to be the job's own, and connections kept
//! for many statements.

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

use anyhow::Context;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgConnection, PgPool, Postgres};

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
    // The planner's estimates grow with the table, and past jit_above_cost Postgres compiles
    // the job's short statements to machine code, which costs more than it saves: forget over
    // 10 M rows takes 0.09 s with it and 0.04 s without, as over 1 M.
    Ok(target
        .with("statement_timeout", "300s")
        .with("TimeZone", "UTC")
        .with("synchronous_commit", "off")
        .with("jit", "off"))
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
pub struct SharedSession(pub(super) &'static str);

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

    /// As [`KeptSession::run`], given up after `limit`: the connection, perhaps mid-transaction,
    /// is dropped with it.
    pub async fn run_within<T>(
        &mut self,
        limit: std::time::Duration,
        f: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> sqlx::Result<T> {
        match tokio::time::timeout(limit, self.run(f)).await {
            Ok(result) => result,
            Err(_) => {
                self.conn = None;
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer from the database within {limit:?}"),
                )))
            }
        }
    }
}
