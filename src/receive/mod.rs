//! `linkrunner-sync receive`: Linkrunner's install and signup webhooks, taken over HTTP and
//! answered 2xx only once they are committed to Postgres. Deliveries waiting for a commit are
//! written together, so many events cost one transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::db::webhooks::{self, Stored};
use crate::db::{KeptSession, Schema};
use crate::model::personal::{Mode, Protection};
use crate::model::webhook::{self, Event, Unreadable};

/// The path Linkrunner is pointed at.
pub const PATH: &str = "/webhooks/linkrunner";

/// Largest body taken: a documented event weighs about 2 KB; `additional_data` is the app's.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 1000;

/// Deliveries waiting for their commit; past this the sender is told to retry (503).
const QUEUE: usize = 10_000;

/// Longest a delivery waits for its commit before the sender is told to retry: Linkrunner
/// recommends answering within 5 seconds.
const COMMIT_WAIT: Duration = Duration::from_secs(4);

/// What the receiver needs.
pub struct Settings {
    pub schema: Schema,
    /// The `linkrunner-key` Linkrunner sends.
    pub key: SecretString,
    /// The personal-data door, as the schema records it.
    pub door: Protection,
}

/// What the receiver counted since it started.
#[derive(Debug, Default)]
pub struct Counts {
    pub events_new: AtomicU64,
    pub events_again: AtomicU64,
    pub suppressed: AtomicU64,
    pub unreadable: AtomicU64,
    pub unauthorized: AtomicU64,
    pub refused: AtomicU64,
}

impl Counts {
    fn add(&self, stored: Stored) {
        self.events_new.fetch_add(stored.new, Ordering::Relaxed);
        self.events_again.fetch_add(stored.again, Ordering::Relaxed);
        self.suppressed
            .fetch_add(stored.suppressed, Ordering::Relaxed);
        self.unreadable
            .fetch_add(stored.unreadable, Ordering::Relaxed);
    }
}

/// One delivery, and where its commit is told.
struct Delivery {
    item: Item,
    committed: oneshot::Sender<bool>,
}

enum Item {
    Event(Box<Event>),
    /// With the body to keep, as the door allows.
    Unreadable(Unreadable, Option<Vec<u8>>),
}

struct Shared {
    key_digest: [u8; 32],
    door: Protection,
    queue: mpsc::Sender<Delivery>,
    counts: Arc<Counts>,
    pool: PgPool,
}

/// Serves on `listener` until `stop` is cancelled: then it takes no new connection, answers
/// what it holds, commits it, and returns.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    pool: PgPool,
    counts: Arc<Counts>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (queue, deliveries) = mpsc::channel(QUEUE);
    let committer = tokio::spawn(commit(
        deliveries,
        pool.clone(),
        settings.schema.clone(),
        counts.clone(),
    ));
    let shared = Arc::new(Shared {
        key_digest: Sha256::digest(settings.key.expose_secret().as_bytes()).into(),
        door: settings.door,
        queue,
        counts,
        pool,
    });
    let app = Router::new()
        .route(PATH, post(deliver))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await?;
    // Every handler has ended, and with them every sender but the committer's own queue.
    committer.await?;
    Ok(())
}

/// One delivery: the key checked, the body read, and the answer given once it is committed.
async fn deliver(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let sent = headers
        .get("linkrunner-key")
        .map_or(&b""[..], |v| v.as_bytes());
    // Digests of equal length, compared in constant time: neither the key nor its length
    // shows in how long a wrong one takes.
    let sent: [u8; 32] = Sha256::digest(sent).into();
    if !bool::from(sent.ct_eq(&shared.key_digest)) {
        shared.counts.unauthorized.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, "");
    }
    let item = match webhook::read(&body, &shared.door) {
        Ok(event) => Item::Event(Box::new(event)),
        Err(why) => {
            let kept = kept_body(&shared.door, &body);
            Item::Unreadable(why, kept)
        }
    };
    let (committed, done) = oneshot::channel();
    if shared.queue.try_send(Delivery { item, committed }).is_err() {
        shared.counts.refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "busy");
    }
    match tokio::time::timeout(COMMIT_WAIT, done).await {
        Ok(Ok(true)) => (StatusCode::OK, "ok"),
        _ => {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            (StatusCode::SERVICE_UNAVAILABLE, "not stored; send again")
        }
    }
}

/// The body of an unreadable delivery as it may be kept: as received in `keep` mode, through
/// the door otherwise, and not at all when the door cannot read it.
fn kept_body(door: &Protection, body: &[u8]) -> Option<Vec<u8>> {
    if door.mode == Mode::Keep {
        return Some(body.to_vec());
    }
    let text = std::str::from_utf8(body).ok()?;
    Some(door.body(text.replace('\0', "")).into_bytes())
}

/// Ready while the database answers.
async fn ready(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    let ping = sqlx::query("SELECT 1").execute(&shared.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

/// Commits deliveries as they come, all those waiting at once in one transaction, and tells
/// each whether it is stored.
async fn commit(
    mut deliveries: mpsc::Receiver<Delivery>,
    pool: PgPool,
    schema: Schema,
    counts: Arc<Counts>,
) {
    let mut session = KeptSession::new(pool);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while deliveries.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events: Vec<&Event> = batch
            .iter()
            .filter_map(|d| match &d.item {
                Item::Event(e) => Some(&**e),
                Item::Unreadable(..) => None,
            })
            .collect();
        let unreadable: Vec<(&Unreadable, Option<&[u8]>)> = batch
            .iter()
            .filter_map(|d| match &d.item {
                Item::Unreadable(why, body) => Some((why, body.as_deref())),
                Item::Event(_) => None,
            })
            .collect();
        let stored = session
            .run(async |conn| webhooks::store(&schema, conn, &events, &unreadable).await)
            .await;
        let ok = match stored {
            Ok(stored) => {
                counts.add(stored);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, deliveries = batch.len(), "could not store webhook deliveries; answered 503 so Linkrunner sends them again");
                false
            }
        };
        for delivery in batch.drain(..) {
            let _ = delivery.committed.send(ok);
        }
    }
}
