//! The read Data APIs: `GET /campaigns`, `GET /attributed-users`, `GET /get-attribution-result`.
//! Auth, rate limit and injected errors are handled before these run (see `faults`); the
//! reshuffles and churn of rows between pages happen here.

use super::data::Campaign;
use super::faults::roll;
use super::generate::fresh_row;
use super::page::users_reply;
use super::row::Row;
use super::{fail, ok, ApiError, Reply, Simulator, State as SimState, PROJECT_DOMAINS};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::clock::parse_local;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use url::Url;

type Params = Query<HashMap<String, String>>;

/// Channel filters the API knows.
const CHANNELS: [&str; 4] = ["GOOGLE", "META", "TIKTOK", "APPLE_SEARCH_ADS"];

/// The display id a campaign link names: its `c` parameter or its single path segment, on a
/// project domain. The scheme may be left out.
pub(crate) fn link_display_id(link: &str) -> Option<String> {
    let url = Url::parse(link)
        .or_else(|_| Url::parse(&format!("https://{link}")))
        .ok()?;
    if !PROJECT_DOMAINS.contains(&url.host_str()?) {
        return None;
    }
    if let Some((_, c)) = url.query_pairs().find(|(k, _)| k == "c") {
        return Some(c.into_owned()).filter(|c| !c.is_empty());
    }
    match url
        .path_segments()?
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()[..]
    {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// Validated `page` and `limit`.
struct Paging {
    page: usize,
    limit: usize,
}

impl Paging {
    fn parse(q: &HashMap<String, String>, default_limit: usize) -> Result<Self, ApiError> {
        let unprocessable = |msg: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg);
        let page = match q.get("page").map(|p| (p, p.trim().parse::<usize>())) {
            None => 1,
            Some((_, Ok(n))) if n >= 1 => n,
            Some((p, _)) => {
                let msg = format!("Invalid page number '{p}'. Page must be a positive integer.");
                return Err(unprocessable(msg));
            }
        };
        let limit = match q.get("limit").map(|l| (l, l.trim().parse::<i64>())) {
            None => default_limit,
            Some((_, Ok(n))) if n > 1000 => {
                let msg = format!("Limit {n} exceeds maximum allowed value of 1000.");
                return Err(unprocessable(msg));
            }
            Some((_, Ok(n))) if n >= 1 => n as usize,
            Some((l, _)) => {
                let msg = format!("Invalid limit '{l}'. Limit must be between 1 and 1000.");
                return Err(unprocessable(msg));
            }
        };
        Ok(Paging { page, limit })
    }

    /// How many items come before the page.
    fn skip(&self) -> usize {
        (self.page - 1).saturating_mul(self.limit)
    }

    /// The `pagination` object for `total` items.
    fn pagination(&self, total: usize) -> Value {
        let pages = total.div_ceil(self.limit);
        json!({ "total": total, "pages": pages, "page": self.page, "limit": self.limit })
    }

    /// The page's items and the `pagination` object; a page past the end is empty.
    fn apply<T>(&self, items: Vec<T>) -> (Vec<T>, Value) {
        let pagination = self.pagination(items.len());
        let page = items
            .into_iter()
            .skip(self.skip())
            .take(self.limit)
            .collect();
        (page, pagination)
    }
}

/// `GET /campaigns`: filter, channel, domain and link filters, paged (default limit 100).
pub(crate) async fn campaigns(State(sim): State<Simulator>, Query(q): Params) -> Reply {
    let bad = |msg: &str| fail(StatusCode::BAD_REQUEST, msg);
    let paging = Paging::parse(&q, 100)?;
    let filter = q.get("filter").map_or("ALL".into(), |f| f.to_uppercase());
    let active = match filter.as_str() {
        "ALL" => None,
        "ACTIVE" => Some(true),
        "INACTIVE" => Some(false),
        _ => return bad("Invalid request parameters."),
    };
    // TIKTOK and APPLE_SEARCH_ADS are real channels that no simulated campaign runs on.
    let channel = q.get("channel").map(|c| c.to_uppercase());
    if channel
        .as_ref()
        .is_some_and(|c| !CHANNELS.contains(&c.as_str()))
    {
        return bad(&format!(
            "Invalid channel '{}'. Channel not found.",
            q["channel"]
        ));
    }
    let domain = q.get("domain");
    if let Some(d) = domain.filter(|d| !PROJECT_DOMAINS.contains(&d.as_str())) {
        return bad(&format!(
            "Invalid domain '{d}'. Domain not found for this project."
        ));
    }
    let st = sim.lock();
    let link_id = match q.get("link").map(|l| link_display_id(l)) {
        None => None,
        Some(Some(id)) if st.campaigns.contains_key(&id) => Some(id),
        Some(_) => return bad("Invalid request parameters."),
    };
    let keep = |c: &&Campaign| {
        active.is_none_or(|a| c.active == a)
            && channel.as_ref().is_none_or(|ch| match ch.as_str() {
                "GOOGLE" => c.google,
                "META" => c.meta,
                _ => false,
            })
            && domain.is_none_or(|d| c.domain.as_deref() == Some(d.as_str()))
            && link_id.as_ref().is_none_or(|id| *id == c.display_id)
    };
    let matching: Vec<&Campaign> = st.ordered().into_iter().filter(keep).collect();
    let (page, pagination) = paging.apply(matching);
    let msg = format!(
        "Successfully retrieved {} campaigns ({} campaigns). Showing page {} of {}.",
        page.len(),
        filter.to_lowercase(),
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

/// `GET /attributed-users`: one campaign's rows in an inclusive local-time window, paged
/// (default limit 50).
pub(crate) async fn attributed_users(State(sim): State<Simulator>, Query(q): Params) -> Reply {
    let bad = |msg: &str| fail(StatusCode::BAD_REQUEST, msg);
    let Some(id) = q.get("display_id").filter(|d| !d.is_empty()) else {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Required parameter missing.",
        );
    };
    let paging = Paging::parse(&q, 50)?;
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
    let mut st = sim.lock();
    if !st.campaigns.contains_key(id) {
        return fail(StatusCode::NOT_FOUND, "Resource not found.");
    }
    let faults = st.config.faults.clone();
    if paging.page > 1 && roll(&mut st.fault_rng, faults.shift_rate) {
        let salt = st.fault_rng.random();
        st.campaigns.get_mut(id).unwrap().resalt(salt);
    }
    if paging.page > 1 && roll(&mut st.fault_rng, faults.churn_rate) {
        st.churn(id, start, end);
    }
    let c = &st.campaigns[id];
    let window = c.rows().window(start, end);
    let page = window.page(paging.skip(), paging.limit);
    let total = window.len();
    let msg = format!(
        "Successfully retrieved {total} attributed users for campaign {id}. Showing page {} of {}.",
        paging.page,
        total.div_ceil(paging.limit)
    );
    let users: Vec<&str> = page.iter().map(|r| st.config.served_row(c, r)).collect();
    users_reply(&msg, &users, paging.pagination(total))
}

impl SimState {
    /// Adds a fresh signup to campaign `id` inside `[start, end]` and not in the future, or
    /// removes one of its rows there (reattributed away), as writes landing mid-scan do.
    fn churn(&mut self, id: &str, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) {
        let now = self.now();
        let c = &self.campaigns[id];
        let inside = c.rows().window(start, end).len();
        let lo = start.unwrap_or(c.created_at).max(c.created_at);
        let hi = end.map_or(now, |e| e.min(now));
        if lo <= hi && (inside == 0 || self.fault_rng.random_bool(0.5)) {
            let uid = self.take_uid();
            let c = self.campaigns.get_mut(id).unwrap();
            c.insert_row(fresh_row(&mut self.fault_rng, c, lo, hi, uid));
            self.stats.rows_added += 1;
        } else if inside > 0 {
            // The i-th of the window's rows in served order.
            let i = self.fault_rng.random_range(0..inside);
            let c = self.campaigns.get_mut(id).unwrap();
            let order = c.rows().window(start, end).page(i, 1)[0].order();
            let row = c.remove_row(order).expect("the row was just found");
            let served = self.config.render_row(&self.campaigns[id], &row);
            self.removed.push(served);
            self.stats.rows_removed += 1;
        }
    }
}

/// `GET /get-attribution-result`: the latest attribution of a user id, else of a GAID/IDFA;
/// 204 with an empty body when there is none.
pub(crate) async fn attribution_result(State(sim): State<Simulator>, Query(q): Params) -> Reply {
    let user = q.get("user_id").filter(|s| !s.is_empty());
    let device = q.get("device_identifier").filter(|s| !s.is_empty());
    if user.is_none() && device.is_none() {
        return fail(
            StatusCode::BAD_REQUEST,
            "Either device_identifier or user_id is required.",
        );
    }
    let st = sim.lock();
    let latest = |pred: &dyn Fn(&Row) -> bool| {
        let rows = st
            .campaigns
            .values()
            .flat_map(|c| c.rows().iter().map(move |r| (c, r)));
        rows.filter(|(_, r)| pred(r))
            .max_by_key(|(_, r)| r.attributed_at())
    };
    let by_user = user.and_then(|u| latest(&|r| r.user_id() == Some(u)));
    let Some((c, r)) = by_user.or_else(|| device.and_then(|d| latest(&|r| r.has_device(d)))) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let field = |k: &str| r.fields().get(k).cloned().unwrap_or(Value::Null);
    let data = json!({
        "campaign_name": c.name(),
        "display_id": c.display_id,
        "deeplink": c.deeplink,
        "domain_name": c.link_domain(),
        "ad_set_id": field("ad_set_id"),
        "ad_set_name": field("ad_set_name"),
        "ad_creative_id": field("ad_creative_id"),
        "ad_creative_name": field("ad_creative_name"),
        "keyword_id": null,
        "keyword_name": null,
        "ad_network": field("ad_channel"),
        "attribution_type": "INORGANIC",
    });
    ok(
        StatusCode::OK,
        "Attribution result retrieved successfully.",
        data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn local_bounds_are_read_in_the_zone() {
        let kolkata = parse_local("2026-05-01T00:00:00.000", Tz::Asia__Kolkata);
        assert_eq!(kolkata, Some(utc("2026-04-30T18:30:00Z")));
        assert_eq!(
            parse_local("2026-05-01T00:00:00", Tz::UTC),
            Some(utc("2026-05-01T00:00:00Z"))
        );
        assert_eq!(
            parse_local("2026-05-01T00:00:00.5", Tz::UTC),
            Some(utc("2026-05-01T00:00:00.500Z"))
        );
        for bad in [
            "2026-05-01",
            "2026-05-01T00:00:00Z",
            "2026-05-01 00:00:00",
            "soon",
        ] {
            assert_eq!(parse_local(bad, Tz::UTC), None, "{bad}");
        }
    }

    #[test]
    fn ambiguous_takes_earliest_and_gap_takes_its_end() {
        let ny = Tz::America__New_York;
        assert_eq!(
            parse_local("2026-11-01T01:30:00.000", ny),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            parse_local("2026-03-08T02:30:00.000", ny),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // Santiago skips local midnight; Lord Howe jumps by half an hour.
        let santiago = parse_local("2026-09-06T00:00:00.000", Tz::America__Santiago);
        assert_eq!(santiago, Some(utc("2026-09-06T04:00:00Z")));
        let howe = parse_local("2026-10-04T02:10:00.000", Tz::Australia__Lord_Howe);
        assert_eq!(howe, Some(utc("2026-10-03T15:30:00Z")));
    }

    #[test]
    fn links_name_their_campaign() {
        let id = |l: &str| link_display_id(l);
        assert_eq!(
            id("https://go.example.org/?c=Ab-12x&utm_source=x"),
            Some("Ab-12x".into())
        );
        assert_eq!(id("https://go.example.org?c=Ab12x"), Some("Ab12x".into()));
        assert_eq!(id("https://links.example.com/Ab12x"), Some("Ab12x".into()));
        assert_eq!(id("go.example.org/Ab12x"), Some("Ab12x".into()));
        assert_eq!(id("https://evil.example.net/?c=Ab12x"), None);
        assert_eq!(id("https://go.example.org/a/b"), None);
    }
}
