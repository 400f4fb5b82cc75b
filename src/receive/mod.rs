//! `linkrunner-sync receive`: Linkrunner's install and signup webhooks, taken over HTTP and
//! answered 2xx only once they are committed to Postgres, or, while it cannot take them, synced
//! to the spool on local disk. Deliveries waiting for a commit are written together, so many
//! events cost one transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::db::webhooks::{self, Deliveries, Stored};
use crate::db::{KeptSession, Schema};
use crate::model::personal::{Mode, Protection};
use crate::model::webhook::{self, Event, Unreadable};

mod metrics;
pub mod spool;

use spool::Spool;

/// The path Linkrunner is pointed at.
pub const PATH: &str = "/webhooks/linkrunner";

/// Largest body taken: a documented event weighs about 2 KB; `additional_data` is the app's.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Most connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;

/// Longest a request's head, and then its body, may take to arrive: a sender that trickles
/// bytes is cut off instead of holding a connection.
pub const READ_TIME: Duration = Duration::from_secs(10);

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 1000;

/// Deliveries waiting for their commit; past this the sender is told to retry (503).
const QUEUE: usize = 10_000;

/// Longest a delivery waits for its commit before the sender is told to retry: Linkrunner
/// recommends answering within 5 seconds.
const COMMIT_WAIT: Duration = Duration::from_secs(4);

/// Longest a commit is given when a spool can take the batch instead: half the wait, so the
/// spool's write still fits before the answer is due.
const SPOOL_AFTER: Duration = Duration::from_secs(2);

/// Longest the answers still owed may take after a stop, before the connections are dropped.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the receiver needs.
pub struct Settings {
    pub schema: Schema,
    /// The `linkrunner-key` Linkrunner sends.
    pub key: SecretString,
    /// The personal-data door, as the schema records it.
    pub door: Protection,
    /// Where deliveries wait while Postgres cannot take them; without it, they are refused.
    pub spool: Option<Arc<Spool>>,
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
    pub too_large: AtomicU64,
    pub too_slow: AtomicU64,
    /// Acknowledged deliveries by event type ([`webhook::EVENT_TYPES`]), then unreadable ones.
    pub acknowledged: [AtomicU64; 3],
    pub spooled: AtomicU64,
    pub drained: AtomicU64,
    pub commits: metrics::Histogram,
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
    /// By the receiver's clock: kept only when the delivery is spooled.
    received_at: DateTime<Utc>,
    committed: oneshot::Sender<bool>,
}

/// What a delivery holds, as it is stored or spooled.
#[derive(Debug, Serialize, Deserialize)]
pub enum Item {
    Event(Box<Event>),
    /// With the body to keep, as the door allows.
    Unreadable(Unreadable, Option<Vec<u8>>),
}

impl Item {
    /// Its place in [`Counts::acknowledged`].
    fn kind(&self) -> usize {
        match self {
            Item::Event(e) => webhook::EVENT_TYPES
                .iter()
                .position(|t| *t == e.event_type)
                .unwrap_or(2),
            Item::Unreadable(..) => 2,
        }
    }
}

struct Shared {
    key_digest: [u8; 32],
    door: Protection,
    queue: mpsc::Sender<Delivery>,
    counts: Arc<Counts>,
    pool: PgPool,
    spool: Option<Arc<Spool>>,
}

/// Serves on `listener` until `stop` is cancelled: then it takes no new connection, answers
/// what it holds, commits or spools it, and returns.
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
        settings.spool.clone(),
        counts.clone(),
    ));
    let drainer = settings.spool.clone().map(|spool| {
        tokio::spawn(drain(
            spool,
            pool.clone(),
            settings.schema.clone(),
            counts.clone(),
            stop.clone(),
        ))
    });
    let shared = Arc::new(Shared {
        key_digest: Sha256::digest(settings.key.expose_secret().as_bytes()).into(),
        door: settings.door,
        queue,
        counts,
        pool,
        spool: settings.spool,
    });
    let app = Router::new()
        .route(PATH, post(deliver))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(shared);
    accept(listener, app, stop).await;
    // Every connection has ended, and with them every sender but the committer's own queue.
    committer.await?;
    if let Some(drainer) = drainer {
        drainer.await?;
    }
    Ok(())
}

/// Takes connections until `stop`, at most [`MAX_CONNECTIONS`] at once, each request's head
/// due within [`READ_TIME`]; then lets the connections finish the answers they owe.
async fn accept(listener: TcpListener, app: Router, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(READ_TIME);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore stays open"),
            () = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Answers are small: sent at once, not held back for the next segment's ACK.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the stop's grace; dropped");
    }
}

/// One delivery: the key checked, the body read, and the answer given once it is committed
/// or spooled.
async fn deliver(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request<Body>,
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
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(refusal) => {
            let counter = match refusal.0 {
                StatusCode::PAYLOAD_TOO_LARGE => &shared.counts.too_large,
                _ => &shared.counts.too_slow,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return refusal;
        }
    };
    let item = match webhook::read(&body, &shared.door) {
        Ok(event) => Item::Event(Box::new(event)),
        Err(why) => {
            let kept = kept_body(&shared.door, &body);
            Item::Unreadable(why, kept)
        }
    };
    let kind = item.kind();
    let (committed, done) = oneshot::channel();
    let delivery = Delivery {
        item,
        received_at: Utc::now(),
        committed,
    };
    if shared.queue.try_send(delivery).is_err() {
        shared.counts.refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "busy");
    }
    match tokio::time::timeout(COMMIT_WAIT, done).await {
        Ok(Ok(true)) => {
            shared.counts.acknowledged[kind].fetch_add(1, Ordering::Relaxed);
            (StatusCode::OK, "ok")
        }
        _ => {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            (StatusCode::SERVICE_UNAVAILABLE, "not stored; send again")
        }
    }
}

/// The body, at most [`MAX_BODY_BYTES`], within [`READ_TIME`].
async fn read_body(body: Body) -> Result<Bytes, (StatusCode, &'static str)> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(READ_TIME, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err((StatusCode::PAYLOAD_TOO_LARGE, "body too large"))
        }
        Ok(Err(_)) => Err((StatusCode::BAD_REQUEST, "body not read")),
        Err(_) => Err((StatusCode::REQUEST_TIMEOUT, "body too slow")),
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

/// Ready while the database answers, or the spool has room for what it would take instead.
async fn ready(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    let ping = sqlx::query("SELECT 1").execute(&shared.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok"),
        _ if shared
            .spool
            .as_ref()
            .is_some_and(|s| s.has_room(MAX_BODY_BYTES as u64)) =>
        {
            (StatusCode::OK, "database unreachable; spooling")
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

/// The receiver's counters, in Prometheus's text format.
async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&shared.counts, shared.spool.as_deref()),
    )
}

/// Commits deliveries as they come, all those waiting at once in one transaction, and tells
/// each whether it is stored. While the spool holds deliveries, or when a commit fails, they go
/// to the spool instead, so it drains in the order they came.
async fn commit(
    mut deliveries: mpsc::Receiver<Delivery>,
    pool: PgPool,
    schema: Schema,
    spool: Option<Arc<Spool>>,
    counts: Arc<Counts>,
) {
    let mut session = KeptSession::new(pool);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let limit = if spool.is_some() {
        SPOOL_AFTER
    } else {
        COMMIT_WAIT
    };
    while deliveries.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let direct = spool.as_ref().is_none_or(|s| s.is_empty());
        let ok = if direct {
            let items = batch.iter().map(|d| (&d.item, None));
            let started = Instant::now();
            match store(&mut session, &schema, items, None, limit).await {
                Ok(stored) => {
                    counts.commits.observe(started.elapsed());
                    counts.add(stored);
                    true
                }
                Err(e) if spool.is_some() => {
                    tracing::warn!(error = %e, deliveries = batch.len(), "could not store webhook deliveries; spooling them until the database is back");
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, deliveries = batch.len(), "could not store webhook deliveries; answered 503 so Linkrunner sends them again");
                    false
                }
            }
        } else {
            false
        };
        let ok = match (&spool, ok) {
            (Some(spool), false) => to_spool(spool, &batch, &counts).await,
            (_, ok) => ok,
        };
        for delivery in batch.drain(..) {
            let _ = delivery.committed.send(ok);
        }
    }
}

/// Appends the batch to the spool and syncs it; whether it is there.
async fn to_spool(spool: &Arc<Spool>, batch: &[Delivery], counts: &Counts) -> bool {
    let records = spool::encode(batch.iter().map(|d| (d.received_at, &d.item)));
    let spool = spool.clone();
    match tokio::task::spawn_blocking(move || spool.append(&records)).await {
        Ok(Ok(())) => {
            counts
                .spooled
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, deliveries = batch.len(), "could not spool webhook deliveries; answered 503 so Linkrunner sends them again");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "the spool's writer failed");
            false
        }
    }
}

/// Stores deliveries in one transaction within `limit`; `drained` names the spool segment they
/// come from and how far it is then stored.
async fn store<'a>(
    session: &mut KeptSession,
    schema: &Schema,
    items: impl Iterator<Item = (&'a Item, Option<DateTime<Utc>>)>,
    drained: Option<(&str, i64)>,
    limit: Duration,
) -> sqlx::Result<Stored> {
    let mut deliveries = Deliveries {
        drained,
        ..Deliveries::default()
    };
    for (item, at) in items {
        match item {
            Item::Event(e) => deliveries.events.push((&**e, at)),
            Item::Unreadable(why, body) => deliveries.unreadable.push((why, body.as_deref(), at)),
        }
    }
    session
        .run_within(limit, async |conn| {
            webhooks::store(schema, conn, &deliveries).await
        })
        .await
}

/// Drains the spool into the database, oldest segment first, until `stop`: each chunk of
/// records is stored with the segment's progress in one transaction, and a segment is deleted
/// once all of it is stored.
async fn drain(
    spool: Arc<Spool>,
    pool: PgPool,
    schema: Schema,
    counts: Arc<Counts>,
    stop: CancellationToken,
) {
    let mut session = KeptSession::new(pool);
    let mut pause = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let Some(segment) = spool.oldest() else {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = stop.cancelled() => {}
            }
            continue;
        };
        match drain_segment(&spool, &segment, &mut session, &schema, &counts, &stop).await {
            Ok(()) => pause = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, segment = segment.name, "could not drain the spool yet; trying again");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn drain_segment(
    spool: &Arc<Spool>,
    segment: &spool::Segment,
    session: &mut KeptSession,
    schema: &Schema,
    counts: &Counts,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let read = {
        let segment = segment.clone();
        tokio::task::spawn_blocking(move || spool::read(&segment)).await??
    };
    let (records, torn) = read;
    if torn > 0 {
        // Only a write that was never acknowledged ends this way.
        tracing::warn!(segment = segment.name, bytes = torn, "the spool segment ends with an unfinished record, which was never acknowledged; skipped");
    }
    let name = segment.name.as_str();
    let mut done = session
        .run_within(COMMIT_WAIT, async |conn| {
            webhooks::drained(schema, conn, name).await
        })
        .await? as usize;
    while done < records.len() {
        if stop.is_cancelled() {
            return Ok(());
        }
        let end = (done + MAX_BATCH).min(records.len());
        let items = records[done..end].iter().map(|r| (&r.item, Some(r.at)));
        let stored = store(
            session,
            schema,
            items,
            Some((name, end as i64)),
            COMMIT_WAIT,
        )
        .await?;
        counts.add(stored);
        counts
            .drained
            .fetch_add((end - done) as u64, Ordering::Relaxed);
        done = end;
    }
    let removed = segment.clone();
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || spool.remove(&removed)).await??;
    session
        .run_within(COMMIT_WAIT, async |conn| {
            webhooks::forget_segment(schema, conn, name).await
        })
        .await?;
    tracing::info!(
        segment = name,
        deliveries = records.len(),
        "spool segment drained"
    );
    Ok(())
}
