//! The receiver while Postgres is gone: deliveries are spooled to disk and answered, survive a
//! SIGKILL, and are drained once the database is back, each stored once.

use crate::common::proxy::Proxy;
use crate::common::{self, wait_for};
use crate::receive::{count, kill, post, process_with, receiver_with, signup, KEY};

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkrunner_sync::db::Schema;
use linkrunner_sync::model::personal::Protection;
use linkrunner_sync::model::webhook;
use linkrunner_sync::receive::spool::{self, Spool};
use linkrunner_sync::receive::Item;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// How long Postgres stays away under load.
const OUTAGE: Duration = Duration::from_secs(60);

/// Stored events: user and deliveries.
async fn stored(pool: &PgPool) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT user_id, deliveries FROM linkrunner.webhook_events")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn postgres_addr(db: &PgConnectOptions) -> std::net::SocketAddr {
    let host = match db.get_host() {
        "localhost" => "127.0.0.1",
        host => host,
    };
    format!("{host}:{}", db.get_port()).parse().unwrap()
}

/// Senders posting new signups until told to stop; the users answered 200, and every other
/// answer.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    other: Arc<Mutex<Vec<String>>>,
    stop: tokio_util::sync::CancellationToken,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, senders: usize) -> Load {
        let client = reqwest::Client::new();
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let other: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let senders = (0..senders)
            .map(|sender| {
                let (client, url) = (client.clone(), url.to_owned());
                let (acked, other, stop) = (acked.clone(), other.clone(), stop.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        if stop.is_cancelled() {
                            break;
                        }
                        let user = format!("s{sender}-{i}");
                        let sent = client
                            .post(&url)
                            .header("linkrunner-key", KEY)
                            .body(signup(&user, "2026-03-25T15:52:00Z").to_string())
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == 200 => acked.lock().unwrap().push(user),
                            Ok(r) => other.lock().unwrap().push(r.status().to_string()),
                            Err(e) => other.lock().unwrap().push(e.to_string()),
                        }
                        // A steady stream, not a flood: the drain must be seen to catch up.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Load {
            acked,
            other,
            stop,
            senders,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn finish(self) -> (Vec<String>, Vec<String>) {
        self.stop.cancel();
        for s in self.senders {
            tokio::time::timeout(Duration::from_secs(120), s)
                .await
                .expect("senders end")
                .unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        let other = self.other.lock().unwrap().clone();
        (acked, other)
    }
}

/// Postgres unreachable for a minute while events stream in: every delivery is answered 200
/// from the spool, the receiver stays ready, and once the database is back the spool drains,
/// every answered event stored exactly once.
#[sqlx::test]
async fn postgres_gone_for_a_minute_under_load_loses_nothing_and_drains(
    pool_options: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = pool_options.connect_with(db.clone()).await.unwrap();
    let proxy = Proxy::start(postgres_addr(&db)).await;
    let through = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(db.clone().host("127.0.0.1").port(proxy.addr.port()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 30).unwrap());
    let r = receiver_with(
        &through,
        Schema::default(),
        Protection::default(),
        Some(spool.clone()),
    )
    .await;
    let base = r
        .url
        .trim_end_matches(linkrunner_sync::receive::PATH)
        .to_owned();
    let load = Load::start(&r.url, 4);
    wait_for("events before the outage", Duration::from_secs(60), || {
        let n = load.acked();
        async move { (n >= 200).then_some(()) }
    })
    .await;
    proxy.cut();
    let before = load.acked();
    tokio::time::sleep(OUTAGE / 2).await;
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "ready while the spool has room");
    assert!(spool.bytes() > 0, "the outage's deliveries are on disk");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("linkrunner_receive_spool_bytes ")
            && !metrics.contains("linkrunner_receive_spool_bytes 0\n"),
        "{metrics}"
    );
    tokio::time::sleep(OUTAGE / 2).await;
    let during = load.acked() - before;
    assert!(
        during >= 100,
        "deliveries answered during the outage: {during}"
    );
    proxy.restore();
    // The drain catches up while the stream goes on.
    wait_for(
        "the spool drained under load",
        Duration::from_secs(300),
        || {
            let empty = spool.is_empty();
            async move { empty.then_some(()) }
        },
    )
    .await;
    let (acked, other) = load.finish().await;
    assert!(other.is_empty(), "every delivery answered 200: {other:?}");
    r.stop().await;
    let stored = stored(&pool).await;
    let users: HashSet<&str> = stored.iter().map(|(u, _)| u.as_str()).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|u| !users.contains(u.as_str()))
        .collect();
    assert!(missing.is_empty(), "answered but not stored: {missing:?}");
    assert_eq!(
        stored.len(),
        acked.len(),
        "nothing stored that was not answered"
    );
    assert!(stored.iter().all(|(_, n)| *n == 1), "each event once");
    assert_eq!(segment_files(&spool, dir.path()), 0, "no segment left");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.webhook_spool_drained"
        )
        .await,
        0
    );
}

/// Segment files left in the spool's directory.
fn segment_files(spool: &Spool, dir: &std::path::Path) -> usize {
    assert!(spool.is_empty());
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".spool")
        })
        .count()
}

/// Spooled deliveries survive a SIGKILL: the receiver started again on the same spool drains
/// them once the database is back.
#[sqlx::test]
async fn spooled_deliveries_survive_sigkill_and_drain_after_a_restart(
    pool_options: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = pool_options.connect_with(db.clone()).await.unwrap();
    let proxy = Proxy::start(postgres_addr(&db)).await;
    let url = {
        let mut url = url::Url::parse(&common::database_url(&db)).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        url.to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().to_str().unwrap().to_owned();
    let args = ["--spool-dir", spool_dir.as_str()];
    let mut p = process_with(&url, &args).await;
    for i in 0..50 {
        let body = signup(&format!("before-{i}"), "2026-03-25T15:52:00Z").to_string();
        assert_eq!(post(&p.url, Some(KEY), body).await, 200);
    }
    proxy.cut();
    for i in 0..200 {
        let body = signup(&format!("during-{i}"), "2026-03-25T15:52:00Z").to_string();
        assert_eq!(
            post(&p.url, Some(KEY), body).await,
            200,
            "spooled and answered"
        );
    }
    // A redelivery of a spooled event is spooled too, and counted once stored.
    let again = signup("during-0", "2026-03-25T15:52:00Z").to_string();
    assert_eq!(post(&p.url, Some(KEY), again).await, 200);
    let pid = p.child.id().unwrap() as i32;
    assert_eq!(kill(pid, "KILL"), 0);
    p.child.wait().await.unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.webhook_events").await,
        50,
        "the outage's deliveries are only in the spool"
    );
    proxy.restore();
    let _p = process_with(&url, &args).await;
    wait_for("the spool drained", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move {
            let n = count(&pool, "SELECT count(*) FROM linkrunner.webhook_events").await;
            (n == 250).then_some(())
        }
    })
    .await;
    let stored = stored(&pool).await;
    let deliveries: i32 = stored.iter().map(|(_, n)| n).sum();
    assert_eq!(deliveries, 251, "the redelivery counted, nothing twice");
    wait_for(
        "the drained segments deleted",
        Duration::from_secs(60),
        || {
            let left = std::fs::read_dir(dir.path()).unwrap().count();
            async move { (left == 0).then_some(()) }
        },
    )
    .await;
}

/// A segment whose first records were stored before a crash (the file outlived its drain):
/// drained again, those records are not counted twice and the rest are stored.
#[sqlx::test]
async fn a_segment_drained_in_part_before_a_crash_is_not_counted_again(pool: PgPool) {
    let door = Protection::default();
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<Item> = (0..10)
        .map(|i| {
            let body = signup(&format!("u-{i}"), "2026-03-25T15:52:00Z").to_string();
            Item::Event(Box::new(webhook::read(body.as_bytes(), &door).unwrap()))
        })
        .collect();
    let segment = {
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let now = chrono::Utc::now();
        spool
            .append(&spool::encode(items.iter().map(|i| (now, i))))
            .unwrap();
        spool.oldest().unwrap().name
    };
    // The first four are stored, and the segment's progress says so.
    for i in 0..4 {
        let body = signup(&format!("u-{i}"), "2026-03-25T15:52:00Z").to_string();
        let r = receiver_with(&pool, Schema::default(), door.clone(), None).await;
        assert_eq!(post(&r.url, Some(KEY), body).await, 200);
        r.stop().await;
    }
    sqlx::query("INSERT INTO linkrunner.webhook_spool_drained (segment, records) VALUES ($1, 4)")
        .bind(&segment)
        .execute(&pool)
        .await
        .unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 30).unwrap());
    let r = receiver_with(&pool, Schema::default(), door, Some(spool.clone())).await;
    wait_for("the segment drained", Duration::from_secs(60), || {
        let empty = spool.is_empty();
        async move { empty.then_some(()) }
    })
    .await;
    assert_eq!(r.counts.drained.load(Ordering::Relaxed), 6);
    r.stop().await;
    let stored = stored(&pool).await;
    assert_eq!(stored.len(), 10);
    assert!(stored.iter().all(|(_, n)| *n == 1), "{stored:?}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.webhook_spool_drained"
        )
        .await,
        0
    );
}
