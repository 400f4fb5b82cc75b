//! Where the simulator pushes webhooks, how it retries, and the faults it injects into them.

use std::time::Duration;

/// A webhook target: the receiver's URL, the key sent with each request, the retry delays and
/// the faults. Events go to the target set when they were generated.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// The receiver, `http://` (the simulator is built without TLS).
    pub url: String,
    /// Sent as the `linkrunner-key` header.
    pub key: String,
    /// Waits before each retry of a failed request; after the last one the delivery is given
    /// up. Linkrunner's: 1 s, 2 s, 4 s.
    pub retry_delays: Vec<Duration>,
    /// A request without an answer by then has failed.
    pub timeout: Duration,
    pub faults: WebhookFaults,
}

impl WebhookConfig {
    /// Linkrunner's retries (1 s, 2 s, 4 s) and a 5 s timeout, without faults.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            key: key.into(),
            retry_delays: [1, 2, 4].map(Duration::from_secs).to_vec(),
            timeout: Duration::from_secs(5),
            faults: WebhookFaults::default(),
        }
    }
}

/// Faults drawn per event from a RNG seeded by the simulator's seed (and reseeded whenever a
/// target is set), so the same seed and the same calls give the same faults. Rates are
/// fractions 0..1.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookFaults {
    /// Events never sent, counted lost.
    pub drop_rate: f64,
    /// Events sent twice, the copy right after the first request (each copy retries on its
    /// own).
    pub double_rate: f64,
    /// Events whose first request waits a drawn delay, 0 to `delay_max`, while later events
    /// go ahead.
    pub delay_rate: f64,
    pub delay_max: Duration,
    /// Events held back until the next event has been sent.
    pub reorder_rate: f64,
    /// How long an event is held back when no next event comes (a wait for the webhooks
    /// releases it at once).
    pub reorder_hold: Duration,
}

impl Default for WebhookFaults {
    fn default() -> Self {
        WebhookFaults {
            drop_rate: 0.0,
            double_rate: 0.0,
            delay_rate: 0.0,
            delay_max: Duration::ZERO,
            reorder_rate: 0.0,
            reorder_hold: Duration::from_secs(2),
        }
    }
}

/// An `http://` or `https://` URL with a host.
pub fn check_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    let web = matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some();
    web.then(|| url.to_string())
        .ok_or_else(|| format!("'{url}' is not an http(s) URL with a host"))
}
