//! Generated campaigns: their display ids, names, dates, ad networks and link settings.

use super::draw::{between, random_id};
use crate::config::SimConfig;
use crate::data::Campaign;
use crate::hash::mix;
use crate::project::PROJECT_DOMAINS;
use chrono::TimeDelta;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::HashSet;

/// A display id not in `taken`, which it joins.
pub(super) fn unique_display_id(rng: &mut ChaCha8Rng, taken: &mut HashSet<String>) -> String {
    loop {
        let id = display_id(rng);
        if taken.insert(id.clone()) {
            return id;
        }
    }
}

/// 6 to 10 mixed-case alphanumerics, a quarter of them with a '-' inside.
fn display_id(rng: &mut ChaCha8Rng) -> String {
    let len = rng.random_range(6..=10);
    let mut id = random_id(rng, len);
    if rng.random_bool(0.25) {
        let at = rng.random_range(2..len - 2);
        id.replace_range(at..at + 1, "-");
    }
    id
}

/// Campaign number `i` (from 0), created in the first half of the data set's span.
pub(super) fn campaign(rng: &mut ChaCha8Rng, cfg: &SimConfig, i: usize, id: String) -> Campaign {
    let name = campaign_name(rng, i);
    let created = between(rng, cfg.start, cfg.start + (cfg.end - cfg.start) / 2);
    let mut c = Campaign::new(i as u64 + 1, id, name, created);
    c.salt = rng.random();
    if rng.random_bool(0.6) {
        c.update_at = between(rng, created, (created + TimeDelta::days(30)).min(cfg.end));
    }
    ad_network(rng, &mut c);
    c.apple_search_ads = !c.meta && !c.google && runs_on_apple_search_ads(cfg.seed, c.uid);
    link_settings(rng, &mut c, i);
    extras(rng, &mut c, i);
    c
}

fn campaign_name(rng: &mut ChaCha8Rng, i: usize) -> String {
    const ADJ: [&str; 6] = [
        "Spring", "Summer", "Festive", "Weekend", "Launch", "Retarget",
    ];
    const NOUN: [&str; 6] = [
        "referral push",
        "install drive",
        "promo",
        "creator collab",
        "bio link",
        "QR poster",
    ];
    format!(
        "{} {} {}",
        ADJ.choose(rng).unwrap(),
        NOUN.choose(rng).unwrap(),
        i + 1
    )
}

/// META (40%, with a META campaign id), GOOGLE (30%) or neither; some of the rest show "" as
/// their META campaign id.
fn ad_network(rng: &mut ChaCha8Rng, c: &mut Campaign) {
    match rng.random_range(0..10) {
        0..=3 => {
            c.meta = true;
            c.meta_campaign_id = Some(format!("1202{:014}", rng.random_range(0..10u64.pow(14))));
            c.meta_web_to_app = rng.random_bool(0.2);
        }
        4..=6 => c.google = true,
        _ => {}
    }
    if !c.meta && rng.random_bool(0.25) {
        c.meta_campaign_id = Some(String::new());
    }
}

/// Half the campaigns without META or GOOGLE, chosen by a seeded hash rather than a draw, so
/// adding the channel left every other generated value as it was.
fn runs_on_apple_search_ads(seed: u64, uid: u64) -> bool {
    mix(mix(seed ^ 0xA5A) ^ uid) % 2 == 0
}

/// Whether it is active, its domain (or none), store listings and deeplink.
fn link_settings(rng: &mut ChaCha8Rng, c: &mut Campaign, i: usize) {
    c.active = rng.random_bool(0.85);
    c.domain = [Some(PROJECT_DOMAINS[0]), Some(PROJECT_DOMAINS[1]), None]
        .choose(rng)
        .unwrap()
        .map(String::from);
    let ios = *[None, Some(0), Some(3)].choose(rng).unwrap();
    let android = *[None, Some(1), Some(2)].choose(rng).unwrap();
    c.store_listings = ios.into_iter().chain(android).collect();
    if rng.random_bool(0.5) {
        c.deeplink = Some(format!("https://{}/offers/{}", c.link_domain(), i + 1));
    }
}

/// The undocumented keys: a website (maybe null), and a META campaign's ad account.
fn extras(rng: &mut ChaCha8Rng, c: &mut Campaign, i: usize) {
    if rng.random_bool(0.3) {
        let site = rng
            .random_bool(0.7)
            .then(|| format!("https://www.example.org/c{}", i + 1));
        c.extra.insert("website".into(), json!(site));
    }
    if c.meta && rng.random_bool(0.5) {
        let capi = rng.random_bool(0.5);
        let account =
            json!({ "id": 1000 + i, "name": "Ads", "status": "ACTIVE", "capi_configured": capi });
        c.extra.insert("network_account".into(), account);
    }
}
