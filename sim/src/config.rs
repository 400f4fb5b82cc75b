//! What to simulate: the data set's size, dates and credentials, the Reporting API's project
//! settings, the faults to inject, and where to push webhooks.

use crate::webhook::WebhookConfig;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::Duration;

/// What to simulate: data set size, dates, credentials and faults.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice (data set, generated ids, faults).
    pub seed: u64,
    /// Number of campaigns generated.
    pub campaigns: usize,
    /// Number of attributed-user rows generated, across all campaigns.
    pub users: usize,
    /// Spread the rows evenly over the campaigns, instead of one campaign taking ~30% and the
    /// rest a random share each.
    pub even: bool,
    /// Earliest campaign `created_at` and `attributed_at`.
    pub start: DateTime<Utc>,
    /// Latest `attributed_at` generated.
    pub end: DateTime<Utc>,
    /// Accepted `linkrunner-key` header on `/api/v1/*`.
    pub api_key: String,
    /// Accepted body `token` on `/api/client/*`.
    pub project_token: String,
    /// Share of generated campaigns whose `attributed_users` counter lies (reads 0, is frozen
    /// below the rows, counts installs without signup, or lags), each kind equally often.
    pub counter_lie_rate: f64,
    /// The project's timezone, set in the dashboard: the Reporting API reads `from` and `to` as
    /// local days of it, and no response names it.
    pub reporting_timezone: Tz,
    /// The Reporting API's own limit per API key; `None` turns it off.
    pub reporting_limit: Option<ReportingLimit>,
    /// The billing account is suspended: the Reporting API answers 402 (the Data APIs go on).
    pub reporting_billing_suspended: bool,
    /// Faults injected into `/api/v1/*`.
    pub faults: Faults,
    /// Where install and signup webhooks go; `None` sends none.
    pub webhook: Option<WebhookConfig>,
}

/// At most `requests` Reporting API requests in any `window`, per API key; the ones over it get
/// 429 with `Retry-After: {retry_after_secs}` and do not use up the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportingLimit {
    /// Requests let through per window; 0 refuses every one.
    pub requests: u32,
    pub window: Duration,
    /// The `Retry-After` header of a refusal, in whole seconds as the real API sends it.
    pub retry_after_secs: u64,
}

impl Default for ReportingLimit {
    /// The real API's: one request a minute, `Retry-After: 60`.
    fn default() -> Self {
        ReportingLimit {
            requests: 1,
            window: Duration::from_secs(60),
            retry_after_secs: 60,
        }
    }
}

/// Faults injected into `/api/v1/*` responses. Every rate is a fraction 0..1 drawn from the
/// seeded fault RNG (drift and bad rows from a seeded hash of each record), so a seed replays.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Global token-bucket limit in requests per second; `None` turns it off.
    pub rate_limit_rps: Option<f64>,
    /// Send `Retry-After: 1` on 429s.
    pub retry_after: bool,
    /// Send `Retry-After` on 429s as an HTTP date two seconds on, in place of `1`.
    pub retry_after_date: bool,
    /// Fraction of GET requests answered 500, 502 or 503.
    pub error_rate: f64,
    /// Fraction of `attributed-users` requests with page > 1 that first reshuffle the rows.
    pub shift_rate: f64,
    /// Delay added before every response.
    pub latency: Duration,
    /// Fraction of requests that start a storm: every request gets 429 for `storm_len`.
    pub storm_rate: f64,
    pub storm_len: Duration,
    /// Fraction of GET responses delayed by `slow_delay` on top of `latency`.
    pub slow_rate: f64,
    pub slow_delay: Duration,
    /// Fraction of 200 GET answers whose connection drops after part of the body.
    pub reset_rate: f64,
    /// Fraction of 200 GET answers whose JSON is cut in half but ends cleanly.
    pub truncate_rate: f64,
    /// Fraction of 200 GET answers replaced by a proxy's HTML error page (still 200).
    pub html_rate: f64,
    /// Fraction of `attributed-users` requests with page > 1 that first add or remove a row of
    /// that campaign inside the request's window.
    pub churn_rate: f64,
    /// Fraction of rows and campaigns rendered with schema drift (never their key fields).
    pub drift_rate: f64,
    /// Fraction of rows whose `attributed_at` is missing, null or not a date.
    pub bad_row_rate: f64,
    /// Campaigns whose `attributed-users` requests always answer 500 (a campaign that keeps
    /// failing).
    pub failing_campaigns: Vec<String>,
}

impl SimConfig {
    /// A small data set for tests: 8 campaigns, 600 rows.
    pub fn small(seed: u64) -> Self {
        SimConfig {
            seed,
            campaigns: 8,
            users: 600,
            ..SimConfig::default()
        }
    }
}

impl Default for SimConfig {
    /// The demo data set: 25 campaigns, 5,000 rows between 2026-02-15 and 2026-11-15; a project
    /// in India (`Asia/Kolkata`, so a UTC day is not a project day) on the real reporting limit.
    fn default() -> Self {
        SimConfig {
            seed: 42,
            campaigns: 25,
            users: 5_000,
            even: false,
            start: Utc.with_ymd_and_hms(2026, 2, 15, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap(),
            api_key: "sim-key".into(),
            project_token: "sim-token".into(),
            counter_lie_rate: 0.2,
            reporting_timezone: Tz::Asia__Kolkata,
            reporting_limit: Some(ReportingLimit::default()),
            reporting_billing_suspended: false,
            faults: Faults::default(),
            webhook: None,
        }
    }
}
