//! The Reporting API `GET /reporting/campaigns`: per campaign the clicks, installs, sign-ups,
//! spend, revenue and retention over local days of the project's timezone. Key, general rate
//! limit and injected faults are handled before it runs (see `faults`), as on every `/api/v1`
//! route; its own limit (one request a minute per key by default) and a suspended billing
//! account are answered here.
//!
//! The numbers follow the data set: a day's sign-ups are the campaign's attributed-user rows of
//! that project day (generated, churned or signed up through the client API), and everything
//! else is drawn from the seed, the campaign, the day and the reporting revision, so a re-read
//! gives the same answer until one of them changes (see `funnel`).

mod adsets;
mod filter;
mod format;
mod funnel;
mod query;
mod render;
mod report;

use crate::data::Campaign;
use crate::reply::{ok, ApiError, Reply};
use crate::state::{Simulator, State as SimState};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use query::{Request, Sort};
use render::Context;
use report::{Report, Scope};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;

/// Where a suspended account is sent to pay.
const PAYMENT_LINK: &str = "https://billing.example.org/pay/sim-project";

/// `GET /reporting/campaigns`: the refusals first (limit, billing), then the query (422), then
/// one page of campaigns.
pub(crate) async fn campaigns(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let mut st = sim.lock();
    if let Some(refusal) = st.refuse_report() {
        return Ok(refusal);
    }
    let data = report(&st, &Request::parse(&q)?);
    ok(StatusCode::OK, "Campaigns fetched successfully", data)
}

impl Simulator {
    /// The `data` that `GET /reporting/campaigns` answers to `query`, without using up the
    /// reporting limit or counting a request; `Err` holds the message of a 422.
    pub fn reporting_campaigns(&self, query: &[(&str, &str)]) -> Result<Value, String> {
        let q: HashMap<String, String> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = Request::parse(&q).map_err(|e| e.message().to_string())?;
        Ok(report(&self.lock(), &req))
    }
}

/// The `data` of an answer: the asked page of the filtered, sorted campaigns.
fn report(st: &SimState, req: &Request) -> Value {
    let scope = Scope::new(st, req);
    let mut listed: Vec<(&Campaign, Report)> = st
        .campaigns
        .values()
        .filter(|c| req.filter.keeps(c))
        .map(|c| (c, Report::of(c, &scope)))
        .collect();
    sort(&mut listed, &req.sort);
    let (page, pagination) = req.paging.apply(listed);
    let cx = Context {
        view: req.view,
        has_date_filter: req.has_date_filter(),
        now: st.now(),
    };
    let campaigns: Vec<Value> = page.iter().map(|(c, r)| render::item(c, r, &cx)).collect();
    json!({
        "campaigns": campaigns, "pagination": pagination,
        "display_currency": "USD", "view": req.view.name(),
    })
}

/// By the sort field's value; ties by id, ascending in either order.
fn sort(listed: &mut [(&Campaign, Report)], sort: &Sort) {
    listed.sort_by(|(a, ra), (b, rb)| {
        let (va, vb) = (ra.sort_value(a, sort.field), rb.sort_value(b, sort.field));
        let by_value = if sort.ascending {
            va.cmp(&vb)
        } else {
            vb.cmp(&va)
        };
        by_value.then(a.uid.cmp(&b.uid))
    });
}

impl SimState {
    /// The Reporting API's own refusals, before the query is read: over its limit (429), then
    /// a suspended billing account (402). A refused request does not use up the limit.
    fn refuse_report(&mut self) -> Option<Response> {
        if let Some(limit) = self.config.reporting_limit {
            let quota = &mut self.reporting_quota;
            if !quota.take(limit.requests, limit.window, Instant::now()) {
                self.stats.reporting_rate_limited += 1;
                self.stats.rate_limited += 1;
                return Some(too_many(limit.retry_after_secs));
            }
        }
        self.config
            .reporting_billing_suspended
            .then(payment_required)
    }
}

/// 429 with `Retry-After`, in the words of the other routes' 429.
fn too_many(retry_after_secs: u64) -> Response {
    let msg = "Rate limit exceeded. Please try again later.";
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg).into_response();
    let value = retry_after_secs.to_string().parse().expect("digits");
    response.headers_mut().insert(header::RETRY_AFTER, value);
    response
}

/// 402 with the link to pay at.
fn payment_required() -> Response {
    let code = StatusCode::PAYMENT_REQUIRED;
    let body = json!({
        "msg": "Billing account suspended. Please clear your dues to continue.",
        "status": code.as_u16(),
        "payment_link": PAYMENT_LINK,
    });
    (code, Json(body)).into_response()
}
