//! Test-only control routes under `/__sim/`, a prefix Linkrunner does not use, so no fake
//! Linkrunner endpoint is ever needed to steer the simulator.

use crate::config::{Faults, ReportingLimit};
use crate::counter::Counter;
use crate::direct::CounterState;
use crate::state::Simulator;
use crate::stats::SimStats;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/__sim/stats", get(stats))
        .route("/__sim/clock", post(clock))
        .route("/__sim/faults", post(faults))
        .route("/__sim/counters", get(counters).post(set_counter))
        .route("/__sim/reporting/revision", post(bump_revision))
        .route("/__sim/reporting/billing", post(billing))
        .route("/__sim/reporting/limit", post(reporting_limit))
        .merge(crate::webhook::api::routes())
}

async fn stats(State(sim): State<Simulator>) -> Json<SimStats> {
    Json(sim.stats())
}

#[derive(Deserialize)]
struct Clock {
    now: Option<DateTime<Utc>>,
}

/// `{"now": "<RFC 3339>"}` fixes the clock, `{"now": null}` returns to real time.
async fn clock(State(sim): State<Simulator>, Json(body): Json<Clock>) -> Json<Value> {
    sim.set_now(body.now);
    Json(json!({ "now": body.now }))
}

/// The [`Faults`] as flags of `linkrunner-sim` and as the body of `POST /__sim/faults`:
/// rates are fractions 0..1, durations in milliseconds, and a missing field means "off".
#[derive(clap::Args, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct FaultArgs {
    /// Rate limit over all /api/v1 routes, in requests per second (off when absent).
    #[arg(long = "rate-limit", value_name = "RPS")]
    pub rate_limit_rps: Option<f64>,
    /// Send `Retry-After: 1` with 429s.
    #[arg(long)]
    pub retry_after: bool,
    /// Send `Retry-After` with 429s as an HTTP date two seconds on, in place of `1`.
    #[arg(long)]
    pub retry_after_date: bool,
    /// Fraction of GET requests answered 500, 502 or 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of attributed-users requests with page > 1 that reshuffle the rows first.
    #[arg(long, default_value_t = 0.0)]
    pub shift_rate: f64,
    /// Delay added before every /api/v1 response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of /api/v1 requests that start a 429 storm.
    #[arg(long, default_value_t = 0.0)]
    pub storm_rate: f64,
    /// How long a 429 storm lasts, in milliseconds (0: only the request that starts it).
    #[arg(long, default_value_t = 0)]
    pub storm_len_ms: u64,
    /// Fraction of GET responses delayed by --slow-delay-ms.
    #[arg(long, default_value_t = 0.0)]
    pub slow_rate: f64,
    /// Extra delay of a slow response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub slow_delay_ms: u64,
    /// Fraction of 200 GET answers whose connection is reset mid-body.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Fraction of 200 GET answers whose JSON is cut in half (a clean, short message).
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Fraction of 200 GET answers replaced by an HTML error page.
    #[arg(long, default_value_t = 0.0)]
    pub html_rate: f64,
    /// Fraction of attributed-users requests with page > 1 that add or remove a row first.
    #[arg(long, default_value_t = 0.0)]
    pub churn_rate: f64,
    /// Fraction of rows and campaigns rendered with schema drift.
    #[arg(long, default_value_t = 0.0)]
    pub drift_rate: f64,
    /// Fraction of rows with a missing, null or non-date attributed_at.
    #[arg(long, default_value_t = 0.0)]
    pub bad_row_rate: f64,
    /// A campaign whose attributed-users requests always answer 500 (repeatable).
    #[arg(long = "failing-campaign", value_name = "DISPLAY_ID")]
    #[serde(default)]
    pub failing_campaigns: Vec<String>,
}

impl From<FaultArgs> for Faults {
    fn from(a: FaultArgs) -> Faults {
        let ms = Duration::from_millis;
        Faults {
            rate_limit_rps: a.rate_limit_rps,
            retry_after: a.retry_after,
            retry_after_date: a.retry_after_date,
            error_rate: a.error_rate,
            shift_rate: a.shift_rate,
            latency: ms(a.latency_ms),
            storm_rate: a.storm_rate,
            storm_len: ms(a.storm_len_ms),
            slow_rate: a.slow_rate,
            slow_delay: ms(a.slow_delay_ms),
            reset_rate: a.reset_rate,
            truncate_rate: a.truncate_rate,
            html_rate: a.html_rate,
            churn_rate: a.churn_rate,
            drift_rate: a.drift_rate,
            bad_row_rate: a.bad_row_rate,
            failing_campaigns: a.failing_campaigns,
        }
    }
}

async fn faults(State(sim): State<Simulator>, Json(body): Json<FaultArgs>) -> Json<Value> {
    sim.set_faults(body.into());
    Json(json!({ "ok": true }))
}

/// Every campaign's true rows beside its counter.
async fn counters(State(sim): State<Simulator>) -> Json<Vec<CounterState>> {
    Json(sim.counters())
}

#[derive(Deserialize)]
struct SetCounter {
    display_id: String,
    counter: Counter,
}

/// `{"display_id": "...", "counter": {"kind": "frozen", "value": 3}}` sets how it lies.
async fn set_counter(State(sim): State<Simulator>, Json(body): Json<SetCounter>) -> Json<Value> {
    let ok = sim.set_counter(&body.display_id, body.counter);
    Json(json!({ "ok": ok }))
}

/// Bumps the Reporting API's revision: `{"revision": n}`.
async fn bump_revision(State(sim): State<Simulator>) -> Json<Value> {
    Json(json!({ "revision": sim.bump_reporting_revision() }))
}

#[derive(Deserialize)]
struct Billing {
    suspended: bool,
}

/// `{"suspended": true}` makes the Reporting API answer 402, `false` settles the account.
async fn billing(State(sim): State<Simulator>, Json(body): Json<Billing>) -> Json<Value> {
    sim.set_reporting_billing_suspended(body.suspended);
    Json(json!({ "suspended": body.suspended }))
}

/// The Reporting API's limit as the body of `POST /__sim/reporting/limit`; `null` turns it off.
#[derive(Deserialize)]
struct LimitBody {
    requests: u32,
    window_ms: u64,
    retry_after_secs: u64,
}

/// `{"requests": 1, "window_ms": 60000, "retry_after_secs": 60}` sets the limit, `null`
/// turns it off; either way its window starts empty.
async fn reporting_limit(
    State(sim): State<Simulator>,
    Json(body): Json<Option<LimitBody>>,
) -> Json<Value> {
    let limit = body.map(|b| ReportingLimit {
        requests: b.requests,
        window: Duration::from_millis(b.window_ms),
        retry_after_secs: b.retry_after_secs,
    });
    sim.set_reporting_limit(limit);
    Json(json!({ "ok": true }))
}
