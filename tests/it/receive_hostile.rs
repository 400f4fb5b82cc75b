//! The receiver against hostile senders: trickled heads and bodies are cut off, large and deep
//! bodies refused or kept aside, nothing of a body or key echoed; and what `/metrics` counts.

use crate::receive::{count, post, receiver, signup, KEY};

use std::time::Duration;

use linkrunner_sync::model::personal::Protection;
use linkrunner_sync::receive::{MAX_BODY_BYTES, PATH, READ_TIME};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: a cut-off is due after [`READ_TIME`].
const GUARD: Duration = Duration::from_secs(120);

fn addr(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches(PATH)
        .to_owned()
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(GUARD, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection is still open after {GUARD:?}");
    String::from_utf8_lossy(&got).into_owned()
}

/// A request head that never ends, and a body that stops halfway: both are cut off, no
/// earlier than the read time allows, and nothing is stored; other senders are served
/// meanwhile.
#[sqlx::test]
async fn a_sender_that_trickles_is_cut_off(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let started = tokio::time::Instant::now();
    let mut head = TcpStream::connect(addr(&r.url)).await.unwrap();
    head.write_all(
        format!("POST {PATH} HTTP/1.1\r\nhost: x\r\nlinkrunner-key: {KEY}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let body = signup("u-1", "2026-03-25T15:52:00Z").to_string();
    let mut half = TcpStream::connect(addr(&r.url)).await.unwrap();
    half.write_all(
        format!(
            "POST {PATH} HTTP/1.1\r\nhost: x\r\nlinkrunner-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            body.len(),
            &body[..body.len() / 2]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Served while the two hang.
    let other = signup("u-2", "2026-03-25T15:52:00Z").to_string();
    assert_eq!(post(&r.url, Some(KEY), other).await, 200);
    let answer = until_closed(&mut half).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(!answer.contains("u-1") && !answer.contains(KEY), "{answer}");
    until_closed(&mut head).await;
    assert!(
        started.elapsed() >= READ_TIME,
        "not cut before the read time"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.webhook_events WHERE user_id = 'u-1'"
        )
        .await,
        0
    );
    r.stop().await;
}

/// A body over the cap is refused with 413 and not stored; a body nested deeper than JSON's
/// depth limit is authentic, so it is acknowledged and kept aside with its reason.
#[sqlx::test]
async fn large_and_deep_bodies(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let large = format!(
        "{{\"event_type\":\"signup\",\"user_id\":\"big\",\"pad\":\"{}\"}}",
        "x".repeat(MAX_BODY_BYTES)
    );
    assert_eq!(post(&r.url, Some(KEY), large).await, 413);
    let deep = format!(
        "{{\"event_type\":\"signup\",\"additional_data\":{}{}}}",
        "[".repeat(500),
        "]".repeat(500)
    );
    assert_eq!(post(&r.url, Some(KEY), deep).await, 200);
    let reasons: Vec<String> = sqlx::query_scalar("SELECT reason FROM linkrunner.webhook_rejected")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("recursion limit"), "{reasons:?}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.webhook_events").await,
        0
    );
    r.stop().await;
}

/// `/metrics` counts what was answered and stored, by event type and outcome.
#[sqlx::test]
async fn metrics_count_deliveries_by_type_and_outcome(pool: PgPool) {
    let r = receiver(&pool, Protection::default()).await;
    let event = signup("u-1", "2026-03-25T15:52:00Z").to_string();
    for _ in 0..2 {
        assert_eq!(post(&r.url, Some(KEY), event.clone()).await, 200);
    }
    let mut install = signup("u-2", "2026-03-25T15:52:00Z");
    install["event_type"] = "install".into();
    install["user_id"] = serde_json::Value::Null;
    assert_eq!(post(&r.url, Some(KEY), install.to_string()).await, 200);
    assert_eq!(post(&r.url, Some("wrong-key-0000"), event).await, 401);
    let metrics = reqwest::get(format!("http://{}/metrics", addr(&r.url)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "linkrunner_receive_acknowledged_total{event_type=\"signup\"} 2",
        "linkrunner_receive_acknowledged_total{event_type=\"install\"} 1",
        "linkrunner_receive_stored_total{outcome=\"new\"} 2",
        "linkrunner_receive_stored_total{outcome=\"again\"} 1",
        "linkrunner_receive_refused_total{reason=\"unauthorized\"} 1",
        "linkrunner_receive_spool_max_bytes 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let commits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("linkrunner_receive_commit_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!((1..=3).contains(&commits), "{commits}");
    assert!(!metrics.contains(KEY));
    r.stop().await;
}
