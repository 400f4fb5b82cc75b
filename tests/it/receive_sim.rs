//! The simulator pushing webhooks as Linkrunner does, into a real receiver: with deliveries
//! dropped, doubled, delayed and reordered, each event the receiver answered is stored once
//! with every delivery counted, the dropped ones are missing, and the pull stores every signup.

use crate::common;
use crate::receive::{receiver, KEY};

use std::time::Duration;

use linkrunner_sim::{Outcome, SimConfig, WebhookConfig, WebhookFaults};
use linkrunner_sync::model::personal::Protection;
use serde_json::Value;
use sqlx::PgPool;

const SIGNUPS: usize = 60;

#[sqlx::test]
async fn pushed_events_are_stored_once_each_with_their_deliveries(pool: PgPool) {
    let (sim, server) = common::start(SimConfig {
        counter_lie_rate: 0.0,
        ..SimConfig::small(72)
    })
    .await;
    let r = receiver(&pool, Protection::default()).await;
    let ms = Duration::from_millis;
    let mut hook = WebhookConfig::new(r.url.clone(), KEY);
    hook.retry_delays = vec![ms(20), ms(40), ms(80)];
    hook.faults = WebhookFaults {
        drop_rate: 0.2,
        double_rate: 0.2,
        delay_rate: 0.2,
        delay_max: ms(200),
        reorder_rate: 0.2,
        ..WebhookFaults::default()
    };
    sim.set_webhook(Some(hook));
    let campaigns = sim.campaigns();
    for i in 0..SIGNUPS {
        let campaign = &campaigns[i % campaigns.len()];
        common::signup(
            &server,
            campaign,
            &format!("inst-{i}"),
            &format!("pushed-{i}"),
        )
        .await;
    }
    assert!(
        sim.wait_for_webhooks(Duration::from_secs(120)).await,
        "every delivery ends"
    );
    let events = sim.webhook_events();
    assert_eq!(events.len(), 2 * SIGNUPS, "an install and a signup each");
    let stored: Vec<(String, i32)> =
        sqlx::query_as("SELECT body, deliveries FROM linkrunner.webhook_events")
            .fetch_all(&pool)
            .await
            .unwrap();
    let stored: Vec<(Value, i32)> = stored
        .into_iter()
        .map(|(body, n)| (serde_json::from_str(&body).unwrap(), n))
        .collect();
    let (mut dropped, mut doubled) = (0, 0);
    for event in &events {
        let answered = event
            .attempts
            .iter()
            .filter(|a| a.status.is_some_and(|s| (200..300).contains(&s)))
            .count() as i32;
        let found: Vec<i32> = stored
            .iter()
            .filter(|(body, _)| *body == event.body)
            .map(|(_, n)| *n)
            .collect();
        match event.outcome {
            Outcome::Dropped => {
                dropped += 1;
                assert!(found.is_empty(), "a dropped event is not stored: {event:?}");
            }
            Outcome::Acknowledged => {
                doubled += usize::from(answered > 1);
                assert_eq!(
                    found,
                    [answered],
                    "stored once, every delivery counted: {event:?}"
                );
            }
            other => panic!("no delivery fails against a receiver that answers: {other:?}"),
        }
    }
    assert!(
        dropped > 0 && doubled > 0,
        "the faults were drawn: {dropped} {doubled}"
    );
    assert_eq!(
        stored.len(),
        events
            .iter()
            .filter(|e| e.outcome == Outcome::Acknowledged)
            .count(),
        "nothing stored that was not sent"
    );
    // The pull stores every signup, pushed or not.
    let config = common::sync_config(&server, "UTC");
    linkrunner_sync::sync::run(&config, &pool).await.unwrap();
    common::assert_exact(&pool, &sim).await;

    // Reconciled: every answered signup matched to its pulled row, and the signups pulled
    // without their event are the simulator's own count of signup deliveries that never came,
    // since the first event stored (when the views count the receiver as running).
    let first = events
        .iter()
        .filter(|e| e.outcome == Outcome::Acknowledged)
        .map(|e| chrono::DateTime::parse_from_rfc3339(&e.attributed_on).unwrap())
        .min()
        .unwrap();
    let signups = |outcome: Outcome| {
        events
            .iter()
            .filter(|e| e.event_type == "signup" && e.outcome == outcome)
            .filter(|e| chrono::DateTime::parse_from_rfc3339(&e.attributed_on).unwrap() >= first)
            .count() as i64
    };
    let matched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM linkrunner.webhook_signups_matched WHERE status = 'matched'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let unmatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM linkrunner.webhook_signups_matched WHERE status <> 'matched'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((matched, unmatched), (signups(Outcome::Acknowledged), 0));
    let (with, without): (i64, i64) = sqlx::query_as(
        "SELECT sum(with_event)::int8, sum(without_event)::int8
         FROM linkrunner.daily_webhook_delivery_in('UTC')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (with, without),
        (signups(Outcome::Acknowledged), signups(Outcome::Dropped)),
        "the views count the deliveries the simulator lost"
    );
    assert!(without > 0, "some signup deliveries were lost");
    r.stop().await;
}
