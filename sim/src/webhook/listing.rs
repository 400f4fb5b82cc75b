//! An event as the simulator lists it: its key fields, drawn faults, requests and outcome.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A generated event as `GET /__sim/webhook/events` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Place in the order of generation, from 0.
    pub seq: u64,
    pub event_type: String,
    /// The body's `user_id` (null on install).
    pub user_id: Option<String>,
    /// The body's `campaign_id`: the campaign's display id, null when organic.
    pub campaign_id: Option<String>,
    /// The body's `attributed_on`.
    pub attributed_on: String,
    /// The install the SDK call named (not in the body).
    pub install_instance_id: Option<String>,
    pub faults: EventFaults,
    pub outcome: Outcome,
    /// Every request, in the order their answers came.
    pub attempts: Vec<Attempt>,
    /// The body, as sent.
    pub body: Value,
}

/// The faults drawn for an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFaults {
    pub dropped: bool,
    pub doubled: bool,
    /// The wait before its first request, when delayed.
    pub delay_ms: Option<u64>,
    /// Held back and sent after the event that followed it.
    pub reordered: bool,
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A delivery has not ended yet.
    Pending,
    /// A request of it was answered 2xx.
    Acknowledged,
    /// Every delivery gave up after its last retry.
    Lost,
    /// Dropped by the fault: never sent.
    Dropped,
}

/// One request of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 0 for the event's delivery, 1 for the copy of a doubled event.
    pub copy: u8,
    /// 0 for the first request of the delivery, then 1, 2, ... for its retries.
    pub retry: u32,
    /// When it was sent, in milliseconds after the event was generated.
    pub sent_after_ms: u64,
    /// The answer's status; none when the connection failed or timed out.
    pub status: Option<u16>,
    /// Why it failed, when it did: `status 500`, `timeout`, `connect: ...`.
    pub error: Option<String>,
}

/// The listing of a new event: its key fields read back from the body.
pub(crate) fn listed(
    seq: usize,
    body: Value,
    iid: Option<&str>,
    faults: EventFaults,
) -> WebhookEvent {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    WebhookEvent {
        seq: seq as u64,
        event_type: text("event_type").unwrap_or_default(),
        user_id: text("user_id"),
        campaign_id: text("campaign_id"),
        attributed_on: text("attributed_on").unwrap_or_default(),
        install_instance_id: iid.map(String::from),
        faults,
        outcome: Outcome::Pending,
        attempts: Vec::new(),
        body,
    }
}
