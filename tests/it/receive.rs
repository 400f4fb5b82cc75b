//! The webhook receiver against a real Postgres, over loopback: what it stores, what it
//! refuses, and that an answered delivery is committed.

use crate::common;
use crate::common::receiver::{self, Receiver};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use linkrunner_sync::db::{self, Schema};
use linkrunner_sync::model::personal::{Mode, Protection};
use linkrunner_sync::receive::{self, Counts, Settings, PATH};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub(crate) const KEY: &str = "webhook-key-7f3a";

/// A receiver on a port of its own; stopped when the token is cancelled.
pub(crate) struct Running {
    pub(crate) url: String,
    pub(crate) counts: Arc<Counts>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the receiver stops")
            .unwrap()
            .unwrap();
    }
}

pub(crate) async fn receiver(pool: &PgPool, door: Protection) -> Running {
    receiver_in(pool, Schema::default(), door).await
}

async fn receiver_in(pool: &PgPool, schema: Schema, door: Protection) -> Running {
    receiver_with(pool, schema, door, None).await
}

/// A receiver storing through `pool`, with a spool when given one.
pub(crate) async fn receiver_with(
    pool: &PgPool,
    schema: Schema,
    door: Protection,
    spool: Option<Arc<receive::spool::Spool>>,
) -> Running {
    db::prepare(&mut db::session(pool).await.unwrap(), &schema)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{PATH}", listener.local_addr().unwrap());
    let settings = Settings {
        schema,
        key: SecretString::from(KEY),
        door,
        spool,
    };
    let counts = Arc::new(Counts::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(receive::serve(
        listener,
        settings,
        pool.clone(),
        counts.clone(),
        stop.clone(),
    ));
    Running {
        url,
        counts,
        stop,
        task,
    }
}

pub(crate) fn signup(user: &str, attributed_on: &str) -> Value {
    json!({
        "event_type": "signup", "user_id": user, "campaign_id": "OgWmhiSXhG",
        "campaign_name": "TOF - Free trial", "network_name": "ORGANIC", "ad_channel": "META",
        "attributed_on": attributed_on, "installed_at": "2025-12-30T12:34:29.742Z",
        "store_click_at": null, "link": "https://dl.linkrunner.io/?c=OgWmhiSXhG",
        "app_version": "1.0.0", "gaid": "5faa2433", "idfa": null,
        "name": "Canary Person", "phone": "+91 98765 43210", "email": "canary@example.com",
        "additional_data": {"id": user, "email": "canary@example.com", "referral_code": "ABC123"},
        "meta_campaign_details": {"ad_set_id": "as-1", "is_instagram": true},
        "google_campaign_details": null, "a_key_nobody_told_us_about": [1, 2]
    })
}

pub(crate) async fn post(url: &str, key: Option<&str>, body: impl Into<reqwest::Body>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("linkrunner-key", key);
    }
    request.send().await.unwrap().status().as_u16()
}

pub(crate) async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test]
async fn an_event_is_stored_once_typed_and_a_redelivery_is_counted(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let body = signup("u-1", "2026-03-25T15:52:00.007Z").to_string();
    assert_eq!(post(&r.url, Some(KEY), body.clone()).await, 200);
    // Linkrunner sends it again when an answer was lost; keys reordered, it is the same event.
    let reordered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(post(&r.url, Some(KEY), reordered.to_string()).await, 200);
    assert_eq!(post(&r.url, Some(KEY), body.clone()).await, 200);
    let row: (
        String,
        String,
        String,
        chrono::DateTime<chrono::Utc>,
        i32,
        String,
        Value,
    ) = sqlx::query_as(
        "SELECT event_type, user_id, campaign_id, attributed_on, deliveries, body,
                meta_campaign_details
             FROM linkrunner.webhook_events",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((&*row.0, &*row.1, &*row.2), ("signup", "u-1", "OgWmhiSXhG"));
    assert_eq!(row.3.to_rfc3339(), "2026-03-25T15:52:00.007+00:00");
    assert_eq!(row.4, 3, "three deliveries of one event");
    assert_eq!(row.5, body, "the body as received");
    assert_eq!(row.6["is_instagram"], true);
    // The same user attributed again later is another event.
    let later = signup("u-1", "2026-04-02T08:00:00Z").to_string();
    assert_eq!(post(&r.url, Some(KEY), later).await, 200);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.webhook_events").await,
        2
    );
    assert_eq!(r.counts.events_new.load(Ordering::Relaxed), 2);
    assert_eq!(r.counts.events_again.load(Ordering::Relaxed), 2);
    r.stop().await;
}

#[sqlx::test]
async fn a_wrong_or_missing_key_stores_nothing(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let body = signup("u-1", "2026-03-25T15:52:00Z").to_string();
    for key in [
        None,
        Some(""),
        Some("webhook-key-7f3"),
        Some("webhook-key-7f3ab"),
    ] {
        assert_eq!(post(&r.url, key, body.clone()).await, 401, "{key:?}");
    }
    // Nor does a body that is not JSON, under a wrong key.
    assert_eq!(post(&r.url, Some("nope"), "{not json").await, 401);
    for table in ["webhook_events", "webhook_rejected"] {
        let sql = format!("SELECT count(*) FROM linkrunner.{table}");
        assert_eq!(count(&pool, &sql).await, 0, "{table}");
    }
    assert_eq!(r.counts.unauthorized.load(Ordering::Relaxed), 5);
    r.stop().await;
}

#[sqlx::test]
async fn what_cannot_be_an_event_is_acknowledged_and_kept_with_its_reason(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    for body in [
        "{not json".to_string(),
        json!({"event_type": "purchase", "user_id": "u"}).to_string(),
        json!({"event_type": "signup", "user_id": "nul\u{0}here"}).to_string(),
    ] {
        assert_eq!(post(&r.url, Some(KEY), body.clone()).await, 200, "{body}");
        // Sent again: counted, not kept twice.
        assert_eq!(post(&r.url, Some(KEY), body).await, 200);
    }
    let kept: Vec<(String, i32)> = sqlx::query_as(
        "SELECT reason, deliveries FROM linkrunner.webhook_rejected ORDER BY reason",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|(_, n)| *n == 2), "{kept:?}");
    let reasons: Vec<&str> = kept.iter().map(|(r, _)| r.as_str()).collect();
    assert!(reasons[0].starts_with("not JSON"), "{reasons:?}");
    assert!(reasons[1].contains("NUL"), "{reasons:?}");
    assert!(reasons[2].contains("unknown event_type"), "{reasons:?}");
    let raw: Vec<u8> = sqlx::query_scalar(
        "SELECT body FROM linkrunner.webhook_rejected WHERE reason LIKE 'not JSON%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(raw, b"{not json", "kept as received");
    r.stop().await;
}

#[sqlx::test]
async fn personal_data_does_not_reach_the_database_in_hash_or_drop_mode(pool: PgPool) {
    for mode in [Mode::Hash, Mode::Drop] {
        let door = Protection::new(
            mode,
            vec!["name".into(), "email".into(), "phone".into()],
            Some(SecretString::from("a-pii-key-of-sixteen-bytes")),
        )
        .unwrap();
        let schema = format!("lr_{mode:?}").to_lowercase();
        let r = receiver_in(&pool, Schema::parse(&schema).unwrap(), door).await;
        let event = signup("u-9", "2026-03-25T15:52:00Z").to_string();
        assert_eq!(post(&r.url, Some(KEY), event).await, 200);
        // Unreadable, yet holding an email: through the door too.
        let odd = r#"{"event_type":"refund","email":"canary@example.com"}"#;
        assert_eq!(post(&r.url, Some(KEY), odd).await, 200);
        let stored: String = sqlx::query_scalar(&format!(
            "SELECT (SELECT string_agg(w::text, ' ') FROM {schema}.webhook_events w) || ' ' ||
                    (SELECT string_agg(convert_from(body, 'UTF8'), ' ')
                     FROM {schema}.webhook_rejected)"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        for canary in ["canary", "Canary", "98765", "43210"] {
            assert!(!stored.contains(canary), "{mode:?}: {stored}");
        }
        assert!(stored.contains("ABC123"), "the rest is kept: {stored}");
        r.stop().await;
    }
}

#[sqlx::test]
async fn a_forgotten_persons_events_are_dropped_at_the_door(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let mut conn = pool.acquire().await.unwrap();
    let people = linkrunner_sync::db::forget::People {
        user_ids: vec![],
        emails: vec!["Canary@Example.com".into()],
        phones: vec![],
    };
    linkrunner_sync::db::forget::forget(&Schema::default(), &mut conn, &people, None)
        .await
        .unwrap();
    let event = signup("u-5", "2026-03-25T15:52:00Z").to_string();
    assert_eq!(post(&r.url, Some(KEY), event).await, 200);
    let other = json!({"event_type": "install", "gaid": "g-1",
        "attributed_on": "2026-03-25T15:52:00Z"})
    .to_string();
    assert_eq!(post(&r.url, Some(KEY), other).await, 200);
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM linkrunner.webhook_events")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored, ["install"]);
    assert_eq!(r.counts.suppressed.load(Ordering::Relaxed), 1);
    r.stop().await;
}

/// Many senders at once: every delivery answered 200 is in the table, exactly once.
#[sqlx::test]
async fn concurrent_deliveries_are_committed_together_and_each_once(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let client = reqwest::Client::new();
    let sends = (0..400).map(|i| {
        let (client, url) = (client.clone(), r.url.clone());
        async move {
            // Every event twice, as redeliveries come.
            let body = signup(&format!("u-{}", i / 2), "2026-03-25T15:52:00Z").to_string();
            client
                .post(url)
                .header("linkrunner-key", KEY)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let answers = futures::future::join_all(sends).await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let (events, deliveries): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(deliveries)::int8 FROM linkrunner.webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((events, deliveries), (200, 400));
    r.stop().await;
}

/// The receiver as a process, on a port it picks.
async fn process(db_url: &str) -> Receiver {
    process_with(db_url, &[]).await
}

/// As [`process`], with more arguments.
pub(crate) async fn process_with(db_url: &str, args: &[&str]) -> Receiver {
    receiver::start_with(db_url, KEY, args).await
}

#[sqlx::test]
async fn without_a_key_the_receiver_does_not_start(
    _: sqlx::postgres::PgPoolOptions,
    db: sqlx::postgres::PgConnectOptions,
) {
    let out = common::output({
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
        cmd.args(["receive", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", common::database_url(&db))
            .env_remove("LINKRUNNER_WEBHOOK_KEY")
            .env_remove("LINKRUNNER_API_KEY");
        cmd
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LINKRUNNER_WEBHOOK_KEY"), "{stderr}");
}

/// SIGTERM: the receiver stops taking connections, answers what it holds and exits 0.
#[sqlx::test]
async fn sigterm_ends_the_receiver_after_what_it_holds(
    pool_options: sqlx::postgres::PgPoolOptions,
    db: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(db.clone()).await.unwrap();
    let mut p = process(&common::database_url(&db)).await;
    let body = signup("u-1", "2026-03-25T15:52:00Z").to_string();
    assert_eq!(post(&p.url, Some(KEY), body).await, 200);
    let pid = p.child.id().unwrap() as i32;
    assert_eq!(kill(pid, "TERM"), 0);
    let status = tokio::time::timeout(Duration::from_secs(60), p.child.wait())
        .await
        .expect("the receiver exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.webhook_events").await,
        1
    );
}

/// SIGKILL while events stream in, then a restart: every delivery answered 200 is stored,
/// each event once.
#[sqlx::test]
async fn sigkill_under_a_stream_of_events_loses_no_answered_event(
    pool_options: sqlx::postgres::PgPoolOptions,
    db: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options.connect_with(db.clone()).await.unwrap();
    let url = common::database_url(&db);
    let mut p = process(&url).await;
    let client = reqwest::Client::new();
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (client, target, acked) = (client.clone(), p.url.clone(), acked.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let user = format!("s{sender}-{i}");
                    let body = signup(&user, "2026-03-25T15:52:00Z").to_string();
                    let sent = client
                        .post(&target)
                        .header("linkrunner-key", KEY)
                        .body(body)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(user),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Kill once a good number of events is in.
    common::wait_for("events answered", Duration::from_secs(120), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 500).then_some(()) }
    })
    .await;
    p.child.start_kill().unwrap();
    p.child.wait().await.unwrap();
    for s in senders {
        tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("senders end once the receiver is gone")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    // Restarted, it takes events again; nothing answered before the kill is missing.
    let p = process(&url).await;
    let again = signup("after-restart", "2026-03-25T15:52:00Z").to_string();
    assert_eq!(post(&p.url, Some(KEY), again).await, 200);
    let stored: Vec<(String, i32)> =
        sqlx::query_as("SELECT user_id, deliveries FROM linkrunner.webhook_events")
            .fetch_all(&pool)
            .await
            .unwrap();
    let stored_users: std::collections::HashSet<&str> =
        stored.iter().map(|(u, _)| u.as_str()).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|u| !stored_users.contains(u.as_str()))
        .collect();
    assert!(missing.is_empty(), "answered but not stored: {missing:?}");
    assert!(stored.iter().all(|(_, n)| *n == 1), "each event once");
    assert!(stored_users.contains("after-restart"));
}

pub(crate) fn kill(pid: i32, signal: &str) -> i32 {
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

/// `forget` erases a person's stored events, found by id, or by email in any spelling.
#[sqlx::test]
async fn forget_deletes_a_persons_stored_events(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    for (user, email) in [("u-1", "Canary@Example.COM"), ("u-2", "other@example.com")] {
        let mut event = signup(user, "2026-03-25T15:52:00Z");
        event["email"] = email.into();
        assert_eq!(post(&r.url, Some(KEY), event.to_string()).await, 200);
    }
    let people = linkrunner_sync::db::forget::People {
        emails: vec!["  canary@example.com ".into()],
        ..Default::default()
    };
    let mut conn = pool.acquire().await.unwrap();
    let erased = linkrunner_sync::db::forget::forget(&Schema::default(), &mut conn, &people, None)
        .await
        .unwrap();
    assert_eq!(erased.webhook_events, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT user_id FROM linkrunner.webhook_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["u-2"]);
    r.stop().await;
}

/// The push steers the pull: a signup behind a trusted counter that does not move is skipped
/// until its webhook arrives; then the next run reads its campaign.
#[sqlx::test]
async fn a_signup_behind_a_trusted_frozen_counter_is_read_because_its_webhook_arrived(
    pool: PgPool,
) {
    use linkrunner_sim::{Counter, SimConfig};
    use linkrunner_sync::sync;
    let (sim, server) = common::start(SimConfig {
        counter_lie_rate: 0.0,
        ..SimConfig::small(71)
    })
    .await;
    let config = common::sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();
    let target = sim.counters().into_iter().find(|c| c.rows >= 2).unwrap();
    let campaign = sim
        .campaigns()
        .into_iter()
        .find(|c| c["display_id"] == target.display_id.as_str())
        .unwrap();
    assert!(sim.set_counter(&target.display_id, Counter::Frozen { value: target.rows }));
    let stored = |user: &'static str| {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                &format!(
                    "SELECT count(*) FROM linkrunner.attributed_users WHERE user_id = '{user}'"
                ),
            )
            .await
        }
    };

    // Without its webhook, the new signup waits behind the counter that does not move.
    common::signup(&server, &campaign, "pushed-install", "u_pushed").await;
    let skipped = sync::run(&config, &pool).await.unwrap();
    assert_eq!(skipped.totals.users.campaigns_pushed, 0);
    assert_eq!(stored("u_pushed").await, 0, "skipped on its counter");

    // Its webhook arrives: the next run reads the campaign and stores the row.
    let r = receiver(&pool, Protection::default()).await;
    let row = sim
        .all_attributed_users()
        .into_iter()
        .find(|u| u["user_data"]["id"] == "u_pushed")
        .unwrap();
    let event = json!({"event_type": "signup", "user_id": "u_pushed",
        "campaign_id": target.display_id, "attributed_on": row["attributed_at"]});
    assert_eq!(post(&r.url, Some(KEY), event.to_string()).await, 200);
    let marked = count(&pool, "SELECT count(*) FROM linkrunner.webhook_due").await;
    assert_eq!(marked, 1);
    let read = sync::run(&config, &pool).await.unwrap();
    assert_eq!(read.totals.users.campaigns_pushed, 1);
    assert_eq!(stored("u_pushed").await, 1);
    // Read, and its user stored: the mark is gone.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.webhook_due").await,
        0
    );
    r.stop().await;
}
