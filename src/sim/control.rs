//! Test-only control routes under `/__sim/`, a prefix Linkrunner does not use, so no fake
//! Linkrunner endpoint is ever needed to steer the simulator.

use super::{Faults, SimStats, Simulator};
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

/// The [`Faults`] fields, with the latency in milliseconds; missing fields mean "off".
#[derive(Deserialize, Default)]
#[serde(default)]
struct FaultsBody {
    rate_limit_rps: Option<f64>,
    retry_after: bool,
    error_rate: f64,
    shift_rate: f64,
    latency_ms: u64,
}

async fn faults(State(sim): State<Simulator>, Json(body): Json<FaultsBody>) -> Json<Value> {
    sim.set_faults(Faults {
        rate_limit_rps: body.rate_limit_rps,
        retry_after: body.retry_after,
        error_rate: body.error_rate,
        shift_rate: body.shift_rate,
        latency: Duration::from_millis(body.latency_ms),
    });
    Json(json!({ "ok": true }))
}
