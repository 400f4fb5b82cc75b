//! The webhook target as flags of `linkrunner-sim` and as the body of `POST /__sim/webhook`:
//! durations in milliseconds, rates fractions 0..1, and no URL means no target.

use super::config::{check_url, WebhookConfig, WebhookFaults};
use serde::Deserialize;
use std::time::Duration;

/// The flags `--webhook-*`; as JSON the same names without the prefix, in snake case.
#[derive(clap::Args, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookArgs {
    /// Receiver of the install and signup webhooks (none are sent when absent).
    #[arg(long = "webhook-url", value_name = "URL", value_parser = check_url)]
    pub url: Option<String>,
    /// The linkrunner-key header sent with each webhook (default: the --api-key).
    #[arg(
        long = "webhook-key",
        value_name = "KEY",
        env = "LINKRUNNER_SIM_WEBHOOK_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// Waits before each retry of a failed webhook, in milliseconds, comma-separated.
    #[arg(
        long = "webhook-retry-delays-ms",
        value_name = "MS,...",
        value_delimiter = ',',
        default_value = "1000,2000,4000"
    )]
    pub retry_delays_ms: Vec<u64>,
    /// A webhook request unanswered after this many milliseconds has failed.
    #[arg(long = "webhook-timeout-ms", value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Fraction of webhook events never sent (counted lost).
    #[arg(long = "webhook-drop-rate", value_name = "RATE", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Fraction of webhook events sent twice.
    #[arg(
        long = "webhook-double-rate",
        value_name = "RATE",
        default_value_t = 0.0
    )]
    pub double_rate: f64,
    /// Fraction of webhook events sent late, by 0 to --webhook-delay-max-ms.
    #[arg(
        long = "webhook-delay-rate",
        value_name = "RATE",
        default_value_t = 0.0
    )]
    pub delay_rate: f64,
    /// Longest delay of a late webhook event, in milliseconds.
    #[arg(long = "webhook-delay-max-ms", value_name = "MS", default_value_t = 0)]
    pub delay_max_ms: u64,
    /// Fraction of webhook events sent after the event that follows them.
    #[arg(
        long = "webhook-reorder-rate",
        value_name = "RATE",
        default_value_t = 0.0
    )]
    pub reorder_rate: f64,
    /// Longest a held-back event waits for a next one, in milliseconds.
    #[arg(
        long = "webhook-reorder-hold-ms",
        value_name = "MS",
        default_value_t = 2000
    )]
    pub reorder_hold_ms: u64,
}

impl Default for WebhookArgs {
    /// As the flags' defaults: no target, Linkrunner's retries, no faults.
    fn default() -> Self {
        let defaults = WebhookConfig::new("", "");
        let faults = defaults.faults;
        let ms = |d: Duration| d.as_millis() as u64;
        WebhookArgs {
            url: None,
            key: None,
            retry_delays_ms: defaults.retry_delays.into_iter().map(ms).collect(),
            timeout_ms: ms(defaults.timeout),
            drop_rate: faults.drop_rate,
            double_rate: faults.double_rate,
            delay_rate: faults.delay_rate,
            delay_max_ms: ms(faults.delay_max),
            reorder_rate: faults.reorder_rate,
            reorder_hold_ms: ms(faults.reorder_hold),
        }
    }
}

impl WebhookArgs {
    /// The target, if a URL is given; `api_key` is the key when none is.
    pub fn config(&self, api_key: &str) -> Result<Option<WebhookConfig>, String> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let ms = Duration::from_millis;
        let faults = WebhookFaults {
            drop_rate: self.drop_rate,
            double_rate: self.double_rate,
            delay_rate: self.delay_rate,
            delay_max: ms(self.delay_max_ms),
            reorder_rate: self.reorder_rate,
            reorder_hold: ms(self.reorder_hold_ms),
        };
        Ok(Some(WebhookConfig {
            url: check_url(url)?,
            key: self.key.clone().unwrap_or_else(|| api_key.to_string()),
            retry_delays: self.retry_delays_ms.iter().copied().map(ms).collect(),
            timeout: ms(self.timeout_ms),
            faults,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_defaults_are_the_flags_defaults() {
        let parsed: WebhookArgs =
            serde_json::from_str(r#"{"url": "http://127.0.0.1:9/h"}"#).unwrap();
        let config = parsed.config("k").unwrap().unwrap();
        let mut expected = WebhookConfig::new("http://127.0.0.1:9/h", "k");
        assert_eq!(config, expected);
        let set = r#"{"url": "http://h/", "key": "w", "retry_delays_ms": [5], "timeout_ms": 7,
            "drop_rate": 0.1, "double_rate": 0.2, "delay_rate": 0.3, "delay_max_ms": 8,
            "reorder_rate": 0.4, "reorder_hold_ms": 9}"#;
        let parsed: WebhookArgs = serde_json::from_str(set).unwrap();
        let ms = Duration::from_millis;
        expected = WebhookConfig {
            url: "http://h/".into(),
            key: "w".into(),
            retry_delays: vec![ms(5)],
            timeout: ms(7),
            faults: WebhookFaults {
                drop_rate: 0.1,
                double_rate: 0.2,
                delay_rate: 0.3,
                delay_max: ms(8),
                reorder_rate: 0.4,
                reorder_hold: ms(9),
            },
        };
        assert_eq!(parsed.config("k").unwrap(), Some(expected));
    }

    #[test]
    fn no_url_is_no_target_and_a_bad_url_is_refused() {
        let none: WebhookArgs = serde_json::from_str("{}").unwrap();
        assert_eq!(none.config("k"), Ok(None));
        for bad in ["nope", "ftp://h/x", "file:///tmp/x"] {
            let args = WebhookArgs {
                url: Some(bad.into()),
                ..WebhookArgs::default()
            };
            assert!(args.config("k").is_err(), "{bad}");
        }
        let typo = serde_json::from_str::<WebhookArgs>(r#"{"url": "http://h/", "drop": 1}"#);
        assert!(typo.is_err(), "unknown keys are refused");
    }
}
