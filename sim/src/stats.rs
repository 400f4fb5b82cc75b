//! What the simulator counts about the requests it served and the webhooks it pushed.

/// Request counters since the simulator started.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimStats {
    /// Every request that reached `/api/v1/*`.
    pub requests: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered with an injected 5xx.
    pub server_errors: u64,
    /// `GET /attributed-users` requests, whatever their answer.
    pub attributed_users_requests: u64,
    /// `GET /campaigns` requests, whatever their answer.
    pub campaigns_requests: u64,
    /// `GET /get-attribution-result` requests, whatever their answer.
    pub attribution_result_requests: u64,
    /// `GET /reporting/campaigns` requests, whatever their answer.
    pub reporting_requests: u64,
    /// Reporting requests refused by the Reporting API's own limit (also in `rate_limited`).
    pub reporting_rate_limited: u64,
    /// Look-ups that found an attribution (200; a body spoiled afterwards still counts).
    pub attribution_found: u64,
    /// Look-ups that found none (204).
    pub attribution_not_found: u64,
    /// Times the look-up index was built: once, then again only after a change it cannot
    /// patch (a removed latest row, a deleted campaign, new device data on a row).
    pub attribution_index_builds: u64,
    /// 429 storms started (their 429s count in `rate_limited`).
    pub storms: u64,
    /// Responses delayed by `slow_delay`.
    pub slow: u64,
    /// Connections reset mid-body.
    pub resets: u64,
    /// Bodies cut short.
    pub truncated: u64,
    /// HTML pages served instead of JSON.
    pub html: u64,
    /// Rows inserted and removed by churn.
    pub rows_added: u64,
    pub rows_removed: u64,
    /// Rows of the current data set rendered with drift, and with an unreadable `attributed_at`.
    pub drifted_rows: u64,
    pub bad_rows: u64,
    /// The webhooks pushed to the configured receiver.
    pub webhooks: WebhookStats,
}

/// Webhook counters since the simulator started. Once every delivery has ended:
/// `sent = acknowledged + failed`, `sent = events - dropped + doubled + retried` and
/// `acknowledged + given_up = events - dropped + doubled` (a delivery is one copy of an event
/// with its retries).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookStats {
    /// Events generated (only while a target is set).
    pub events: u64,
    /// Events still on their way: queued, held back, delayed or between retries.
    pub pending: u64,
    /// Requests sent, copies and retries included.
    pub sent: u64,
    /// Requests answered 2xx.
    pub acknowledged: u64,
    /// Requests answered otherwise, refused, failed or timed out.
    pub failed: u64,
    /// Requests that were retries.
    pub retried: u64,
    /// Deliveries whose last retry failed.
    pub given_up: u64,
    /// Events the receiver never acknowledged: dropped, or every delivery given up.
    pub lost: u64,
    /// Events dropped by the fault (never sent).
    pub dropped: u64,
    /// Events sent twice.
    pub doubled: u64,
    /// Events whose first request waited a drawn delay.
    pub delayed: u64,
    /// Events sent after the event that followed them.
    pub reordered: u64,
}
