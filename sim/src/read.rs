//! The read Data APIs `GET /campaigns` and `GET /attributed-users` (`GET /get-attribution-result`
//! is in `attribution`). Auth, rate limit and injected errors are handled before these run (see
//! `faults`); the reshuffles and churn of rows between pages happen here.

use crate::clock::parse_local;
use crate::data::Campaign;
use crate::generate::fresh_row;
use crate::hash::roll;
use crate::page::users_reply;
use crate::paging::Paging;
use crate::project::{link_display_id, PROJECT_DOMAINS};
use crate::reply::{fail, ok, ApiError, Reply};
use crate::state::{Simulator, State as SimState};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::Rng;
use serde_json::json;
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

/// An inclusive time window; a missing bound is open.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Channel filters the API knows.
const CHANNELS: [&str; 4] = ["GOOGLE", "META", "TIKTOK", "APPLE_SEARCH_ADS"];

fn bad<T>(msg: &str) -> Result<T, ApiError> {
    fail(StatusCode::BAD_REQUEST, msg)
}

/// The filters of `GET /campaigns`.
struct CampaignFilter<'q> {
    /// `filter`, upper-cased: ALL, ACTIVE or INACTIVE.
    filter: String,
    active: Option<bool>,
    channel: Option<String>,
    domain: Option<&'q String>,
    link: Option<&'q String>,
}

impl<'q> CampaignFilter<'q> {
    /// Checks `filter`, `channel` and `domain`, in that order; `link` needs the state.
    fn parse(q: &'q HashMap<String, String>) -> Result<Self, ApiError> {
        let filter = q.get("filter").map_or("ALL".into(), |f| f.to_uppercase());
        let active = match filter.as_str() {
            "ALL" => None,
            "ACTIVE" => Some(true),
            "INACTIVE" => Some(false),
            _ => return bad("Invalid request parameters."),
        };
        let channel = parse_channel(q.get("channel"))?;
        let domain = q.get("domain");
        if let Some(d) = domain.filter(|d| !PROJECT_DOMAINS.contains(&d.as_str())) {
            return bad(&format!(
                "Invalid domain '{d}'. Domain not found for this project."
            ));
        }
        let link = q.get("link");
        Ok(CampaignFilter {
            filter,
            active,
            channel,
            domain,
            link,
        })
    }

    /// The display id `link` names, which must be a live campaign's.
    fn link_id(&self, st: &SimState) -> Result<Option<String>, ApiError> {
        match self.link.map(|l| link_display_id(l)) {
            None => Ok(None),
            Some(Some(id)) if st.campaigns.contains_key(&id) => Ok(Some(id)),
            Some(_) => bad("Invalid request parameters."),
        }
    }

    fn keeps(&self, c: &Campaign, link_id: Option<&String>) -> bool {
        self.active.is_none_or(|a| c.active == a)
            && self.channel.as_ref().is_none_or(|ch| match ch.as_str() {
                "GOOGLE" => c.google,
                "META" => c.meta,
                "APPLE_SEARCH_ADS" => c.apple_search_ads,
                _ => false,
            })
            && self
                .domain
                .is_none_or(|d| c.domain.as_deref() == Some(d.as_str()))
            && link_id.is_none_or(|id| *id == c.display_id)
    }
}

/// The `channel` filter, upper-cased; TIKTOK is a real channel that no simulated campaign runs
/// on.
fn parse_channel(channel: Option<&String>) -> Result<Option<String>, ApiError> {
    match channel {
        Some(c) if !CHANNELS.contains(&c.to_uppercase().as_str()) => {
            bad(&format!("Invalid channel '{c}'. Channel not found."))
        }
        c => Ok(c.map(|c| c.to_uppercase())),
    }
}

/// `GET /campaigns`: filter, channel, domain and link filters, paged (default limit 100).
pub(crate) async fn campaigns(State(sim): State<Simulator>, Query(q): Params) -> Reply {
    let paging = Paging::parse(&q, 100)?;
    let filter = CampaignFilter::parse(&q)?;
    let st = sim.lock();
    let link_id = filter.link_id(&st)?;
    let keep = |c: &&Campaign| filter.keeps(c, link_id.as_ref());
    let matching: Vec<&Campaign> = st.ordered().into_iter().filter(keep).collect();
    let (page, pagination) = paging.apply(matching);
    let msg = format!(
        "Successfully retrieved {} campaigns ({} campaigns). Showing page {} of {}.",
        page.len(),
        filter.filter.to_lowercase(),
        paging.page,
        pagination["pages"]
    );
    let data = json!({
        "total_campaigns": page.len(),
        "campaigns": page.iter().map(|c| st.config.render_campaign(c)).collect::<Vec<_>>(),
        "pagination": pagination,
    });
    ok(StatusCode::OK, &msg, data)
}

/// The window of `start_timestamp` and `end_timestamp`, wall-clock times in `timezone` (UTC
/// when absent).
fn window_bounds(q: &HashMap<String, String>) -> Result<Bounds, ApiError> {
    let tz = match q.get("timezone").map(|t| t.parse::<Tz>()) {
        None => Tz::UTC,
        Some(Ok(tz)) => tz,
        Some(Err(_)) => return bad("Invalid timezone format."),
    };
    let bound = |key: &str| match q.get(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_local(s, tz).map(Some).ok_or(()),
    };
    let (Ok(start), Ok(end)) = (bound("start_timestamp"), bound("end_timestamp")) else {
        return bad("Invalid timestamp format.");
    };
    Ok((start, end))
}

/// `GET /attributed-users`: one campaign's rows in an inclusive local-time window, paged
/// (default limit 50).
pub(crate) async fn attributed_users(State(sim): State<Simulator>, Query(q): Params) -> Reply {
    let Some(id) = q.get("display_id").filter(|d| !d.is_empty()) else {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Required parameter missing.",
        );
    };
    let paging = Paging::parse(&q, 50)?;
    let bounds = window_bounds(&q)?;
    let mut st = sim.lock();
    if !st.campaigns.contains_key(id) {
        return fail(StatusCode::NOT_FOUND, "Resource not found.");
    }
    if paging.page > 1 {
        st.disturb(id, bounds);
    }
    users_page(&st, id, bounds, &paging)
}

/// The page of campaign `id`'s rows in `(start, end)`, as served.
fn users_page(st: &SimState, id: &str, (start, end): Bounds, paging: &Paging) -> Reply {
    let c = &st.campaigns[id];
    let window = c.rows().window(start, end);
    let page = window.page(paging.skip(), paging.limit);
    let total = window.len();
    let msg = format!(
        "Successfully retrieved {total} attributed users for campaign {id}. Showing page {} of {}.",
        paging.page,
        total.div_ceil(paging.limit)
    );
    let users: Vec<_> = page.iter().map(|r| st.config.served_row(c, r)).collect();
    let users: Vec<&str> = users.iter().map(|u| &**u).collect();
    users_reply(&msg, &users, paging.pagination(total))
}

impl SimState {
    /// What writes landing between two pages do to campaign `id`: maybe reshuffle its rows,
    /// then maybe add or remove one in the window.
    fn disturb(&mut self, id: &str, (start, end): Bounds) {
        let (shift, churn) = (self.config.faults.shift_rate, self.config.faults.churn_rate);
        if roll(&mut self.fault_rng, shift) {
            let salt = self.fault_rng.random();
            self.campaigns.get_mut(id).unwrap().resalt(salt);
        }
        if roll(&mut self.fault_rng, churn) {
            self.churn(id, start, end);
        }
    }

    /// Adds a fresh signup to campaign `id` inside `[start, end]` and not in the future, or
    /// removes one of its rows there (reattributed away), as writes landing mid-scan do.
    fn churn(&mut self, id: &str, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) {
        let now = self.now();
        let c = &self.campaigns[id];
        let inside = c.rows().window(start, end).len();
        let lo = start.unwrap_or(c.created_at).max(c.created_at);
        let hi = end.map_or(now, |e| e.min(now));
        if lo <= hi && (inside == 0 || self.fault_rng.random_bool(0.5)) {
            self.add_fresh_row(id, lo, hi);
        } else if inside > 0 {
            // The i-th of the window's rows in served order.
            let i = self.fault_rng.random_range(0..inside);
            self.remove_served_row(id, (start, end), i);
        }
    }

    /// A new signup of campaign `id` attributed in `[lo, hi]`.
    fn add_fresh_row(&mut self, id: &str, lo: DateTime<Utc>, hi: DateTime<Utc>) {
        let uid = self.take_uid();
        let row = fresh_row(&mut self.fault_rng, &self.campaigns[id], lo, hi, uid);
        self.insert_row(id, row);
        self.stats.rows_added += 1;
    }

    /// Removes the `i`-th row of the window, keeping it as it was served.
    fn remove_served_row(&mut self, id: &str, (start, end): Bounds, i: usize) {
        let rows = self.campaigns[id].rows();
        let order = rows.window(start, end).page(i, 1)[0].order();
        let row = self.remove_row(id, order).expect("the row was just found");
        let served = self.config.render_row(&self.campaigns[id], &row);
        self.removed.push(served);
        self.stats.rows_removed += 1;
    }
}
