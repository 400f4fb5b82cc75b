//! The run lock and the reporting lock: advisory locks held on a session a watchdog keeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::db::connect::{session, SharedSession};
use crate::db::schema::{LockKey, Schema, Taken};

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
