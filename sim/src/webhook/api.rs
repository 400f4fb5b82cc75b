//! Steering the webhooks, from Rust and under `/__sim/webhook`: set or clear the target, list
//! the events with their outcomes, and wait until every delivery has ended.

use super::args::WebhookArgs;
use super::config::WebhookConfig;
use super::listing::WebhookEvent;
use super::send::queue;
use crate::state::Simulator;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The longest wait `GET /__sim/webhook/wait` takes.
const MAX_WAIT: Duration = Duration::from_secs(600);

impl Simulator {
    /// Sets the webhook target (`None`: no more events) and starts the fault draws again;
    /// events already generated still go to the target they were generated for.
    pub fn set_webhook(&self, target: Option<WebhookConfig>) {
        let mut st = self.lock();
        st.config.webhook = target;
        st.webhooks.reseed();
    }

    /// The current webhook target.
    pub fn webhook(&self) -> Option<WebhookConfig> {
        self.lock().config.webhook.clone()
    }

    /// Every event generated so far, in order, with its faults, requests and outcome.
    pub fn webhook_events(&self) -> Vec<WebhookEvent> {
        self.lock().webhooks.events()
    }

    /// Waits until every event generated so far has ended (acknowledged, given up or
    /// dropped), letting a held-back event go at once; false if `timeout` came first.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        let mut pending = {
            let mut st = self.lock();
            let held = st.webhooks.release(None);
            queue(self, &mut st, held);
            st.webhooks.pending()
        };
        let done = tokio::time::timeout(timeout, pending.wait_for(|n| *n == 0)).await;
        matches!(done, Ok(Ok(_)))
    }
}

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/__sim/webhook", post(set))
        .route("/__sim/webhook/events", get(events))
        .route("/__sim/webhook/wait", get(wait))
}

/// The [`WebhookArgs`] as JSON; no `url` (or `null`) clears the target. 400 on a bad URL.
async fn set(
    State(sim): State<Simulator>,
    Json(body): Json<Option<WebhookArgs>>,
) -> (StatusCode, Json<Value>) {
    let api_key = sim.lock().config.api_key.clone();
    match body.unwrap_or_default().config(&api_key) {
        Ok(target) => {
            let on = target.is_some();
            sim.set_webhook(target);
            (StatusCode::OK, Json(json!({ "ok": true, "webhook": on })))
        }
        Err(msg) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "ok": false, "msg": msg })),
        ),
    }
}

async fn events(State(sim): State<Simulator>) -> Json<Vec<WebhookEvent>> {
    Json(sim.webhook_events())
}

#[derive(Deserialize)]
struct Wait {
    timeout_ms: Option<u64>,
}

/// `?timeout_ms=` (default 10 s, at most 600 s): 200 when every delivery has ended, else 504;
/// the body says `done` and how many events are `pending`.
async fn wait(State(sim): State<Simulator>, Query(q): Query<Wait>) -> (StatusCode, Json<Value>) {
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(10_000)).min(MAX_WAIT);
    let done = sim.wait_for_webhooks(timeout).await;
    let pending = sim.stats().webhooks.pending;
    let code = if done {
        StatusCode::OK
    } else {
        StatusCode::GATEWAY_TIMEOUT
    };
    (code, Json(json!({ "done": done, "pending": pending })))
}
