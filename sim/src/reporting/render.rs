//! A campaign item of the Reporting API: who the campaign is, then its numbers as formatted
//! strings, its retention, the (always empty) event maps, and its ad sets.
//!
//! The simulated project defines no custom or payment events, so every name sent in `events`,
//! `payment_events` and the like is unknown and dropped, as the real API drops unknown names.

use super::adsets::{creative_type, Ad, AdSet};
use super::filter::on_platform;
use super::format::{cost_per, count, money, percent, ratio};
use super::funnel::Funnel;
use super::query::View;
use super::report::Report;
use crate::clock::ts;
use crate::data::Campaign;
use crate::generate::object;
use crate::project::{LISTINGS, PROJECT_DOMAINS};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

/// The `x` of `activity_in_last_x_days`.
const ACTIVITY_DAYS: i64 = 7;

/// What rendering needs besides the campaign and its report.
pub(super) struct Context {
    pub(super) view: View,
    pub(super) has_date_filter: bool,
    pub(super) now: DateTime<Utc>,
}

/// The campaign item.
pub(super) fn item(c: &Campaign, r: &Report, cx: &Context) -> Value {
    let mut m = identity(c, cx);
    m.extend(numbers(&r.funnel, r.retention, cx.view));
    let sets = r.ad_sets.iter().map(|s| ad_set(c, s, r, cx.view));
    m.insert("adSets".into(), Value::Array(sets.collect()));
    Value::Object(m)
}

/// Identity, links, networks and platforms.
fn identity(c: &Campaign, cx: &Context) -> Map<String, Value> {
    let since = cx.now - TimeDelta::days(ACTIVITY_DAYS);
    let active_lately = c.rows().window(Some(since), Some(cx.now)).len() > 0;
    let mut m = object(json!({
        "id": c.uid, "display_id": c.display_id, "name": c.name(), "link": c.link(),
        "created_at": ts(c.created_at), "active": c.active, "domain": domain(c),
        "custom_store_listing": custom_store_listing(c),
        "meta": c.meta, "meta_web_to_app": c.meta_web_to_app,
        "google": c.google, "google_web_to_app": false, "tiktok": false, "snapchat": false,
        "ios": on_platform(c, "ios"), "android": on_platform(c, "android"),
        "activity_in_last_x_days": active_lately, "has_date_filter": cx.has_date_filter,
    }));
    if c.apple_search_ads {
        m.insert("ad_network_code".into(), json!("APPLE_SEARCH_ADS"));
    }
    if let Some(account) = c.extra.get("network_account") {
        m.insert("network_account".into(), account.clone());
    }
    m
}

/// `{id, name}` of the campaign's own link domain (ids count from 1), or null.
fn domain(c: &Campaign) -> Value {
    let d = c.domain.as_deref();
    let at = PROJECT_DOMAINS.iter().position(|p| Some(*p) == d);
    at.map_or(
        Value::Null,
        |i| json!({ "id": i + 1, "name": PROJECT_DOMAINS[i] }),
    )
}

/// The first of its store listings, or null.
fn custom_store_listing(c: &Campaign) -> Value {
    let first = c.store_listings.first().map(|&i| LISTINGS[i]);
    first.map_or(
        Value::Null,
        |(id, name, platform)| json!({ "id": id, "name": name, "platform": platform }),
    )
}

/// The numbers of a campaign, ad set or creative, and its retention.
fn numbers(f: &Funnel, retention: [u64; 4], view: View) -> Map<String, Value> {
    let converted = f.converted_from();
    let mut m = object(json!({
        "clicks": count(f.clicks), "sign-ups": count(f.signups),
        "uninstalls": count(f.uninstalls), "suspicious_installs": count(f.suspicious),
        "click_through_attribution": count(converted.saturating_sub(f.view_through)),
        "view_through_attribution": count(f.view_through),
        "conversion": percent(f.signups, converted),
        "revenue": money(f.revenue), "spend": money(f.spend), "roas": ratio(f.revenue, f.spend),
        "cost_per_signup": cost_per(f.spend, f.signups),
        "retention": retention_json(retention),
        "custom_events": {}, "payment_events": {},
        "cost_per_custom_events": {}, "cost_per_payment_events": {},
    }));
    let by_view = match view {
        View::UserAcquisition => json!({
            "installs": count(f.installs), "cost_per_install": cost_per(f.spend, f.installs),
        }),
        View::Retargeting => json!({
            "reinstalls": count(f.installs), "reengagements": count(f.reengagements),
            "cost_per_reinstall": cost_per(f.spend, f.installs),
        }),
    };
    m.extend(object(by_view));
    m
}

/// Percentages as numbers with two decimals, such as `38.46`.
fn retention_json([d1, d7, d14, d30]: [u64; 4]) -> Value {
    let pct = |bp: u64| bp as f64 / 100.0;
    json!({ "d1": pct(d1), "d7": pct(d7), "d14": pct(d14), "d30": pct(d30) })
}

/// An ad set with its share of the campaign's numbers, and its creatives with theirs.
fn ad_set(c: &Campaign, s: &AdSet, r: &Report, view: View) -> Value {
    let funnel = r.funnel.share(s.ad.rows, r.rows);
    let creatives = s.creatives.iter().map(|cr| {
        let mut m = ad(cr, funnel.share(cr.rows, s.ad.rows), r.retention, view);
        m.insert("type".into(), json!(creative_type(&cr.name)));
        m.insert("deeplink".into(), json!(c.deeplink));
        Value::Object(m)
    });
    let mut m = ad(&s.ad, funnel, r.retention, view);
    m.insert("adCreatives".into(), Value::Array(creatives.collect()));
    Value::Object(m)
}

fn ad(a: &Ad, f: Funnel, retention: [u64; 4], view: View) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(a.id));
    m.insert("name".into(), json!(a.name));
    m.extend(numbers(&f, retention, view));
    m
}
