//! Generated attributed-user rows: when each user was attributed, the ad behind it, and which
//! users come back to be attributed again.

use super::draw::{between, object};
use super::users::new_user;
use crate::clock::ts;
use crate::config::SimConfig;
use crate::data::Campaign;
use crate::hash::mix;
use crate::row::Row;
use chrono::{DateTime, TimeDelta, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// A user with an id: where their first row is (campaign and row index in generation order),
/// whose `user_data` a later attribution copies, and when they were last attributed.
struct Known {
    first: (usize, usize),
    last: DateTime<Utc>,
}

/// Draws the data set's rows in order, remembering users with an id so some can be attributed
/// again later.
pub(super) struct RowMaker<'a> {
    cfg: &'a SimConfig,
    /// See [`super::instants::tricky_instants`].
    tricky: Vec<DateTime<Utc>>,
    known: Vec<Known>,
    /// Numbers the users made so far.
    next_user: u64,
    /// The rows so far, by campaign index.
    rows: Vec<Vec<Row>>,
}

impl<'a> RowMaker<'a> {
    pub(super) fn new(cfg: &'a SimConfig, tricky: Vec<DateTime<Utc>>, campaigns: usize) -> Self {
        RowMaker {
            cfg,
            tricky,
            known: Vec::new(),
            next_user: 0,
            rows: (0..campaigns).map(|_| Vec::new()).collect(),
        }
    }

    /// One row for each target (a campaign index), in order; the rows by campaign index.
    pub(super) fn make(
        mut self,
        rng: &mut ChaCha8Rng,
        campaigns: &[Campaign],
        targets: Vec<usize>,
    ) -> Vec<Vec<Row>> {
        for (n, ci) in targets.into_iter().enumerate() {
            let uid = (self.cfg.campaigns + n) as u64 + 1;
            let c = &campaigns[ci];
            let (at, fields) = self.row(rng, c, ci);
            let row = Row::new(uid, at, None, fields);
            // Rendered now, while the fields are in cache: a sync reads most rows once, so a
            // text made on first read would cost the request as much as having none.
            self.cfg.served_row(c, &row);
            self.rows[ci].push(row);
        }
        self.rows
    }

    /// `attributed_at` and fields of the next row of `c`, campaign number `ci`.
    fn row(
        &mut self,
        rng: &mut ChaCha8Rng,
        c: &Campaign,
        ci: usize,
    ) -> (DateTime<Utc>, Map<String, Value>) {
        let lo = c.created_at;
        let (user_data, at) = match self.reattributed(rng, lo) {
            Some(i) => self.attribute_again(rng, i, lo),
            None => self.attribute_new(rng, lo, (ci, self.rows[ci].len())),
        };
        (at, row_fields(rng, c, at, user_data))
    }

    /// ~5% are an earlier user attributed again, strictly later, so (campaign, id, at) stays
    /// unique: the index of that user, if there is room after their last attribution.
    fn reattributed(&self, rng: &mut ChaCha8Rng, lo: DateTime<Utc>) -> Option<usize> {
        if rng.random_bool(0.05) && !self.known.is_empty() {
            Some(rng.random_range(0..self.known.len()))
                .filter(|&i| self.known[i].last.max(lo) < self.cfg.end)
        } else {
            None
        }
    }

    /// Known user `i` attributed again after their last time, with their first `user_data`.
    fn attribute_again(
        &mut self,
        rng: &mut ChaCha8Rng,
        i: usize,
        lo: DateTime<Utc>,
    ) -> (Map<String, Value>, DateTime<Utc>) {
        let known = &mut self.known[i];
        let from = known.last.max(lo) + TimeDelta::milliseconds(1);
        let at = between(rng, from, self.cfg.end);
        known.last = at;
        let (ci, ri) = known.first;
        (
            self.rows[ci][ri].user_data().cloned().unwrap_or_default(),
            at,
        )
    }

    /// A new user attributed from `lo` on, ~10% of them at a tricky instant; a user with an id
    /// is remembered by `spot`, where their row goes.
    fn attribute_new(
        &mut self,
        rng: &mut ChaCha8Rng,
        lo: DateTime<Utc>,
        spot: (usize, usize),
    ) -> (Map<String, Value>, DateTime<Utc>) {
        let from = self.tricky.partition_point(|t| *t < lo);
        let at = if rng.random_bool(0.1) && from < self.tricky.len() {
            self.tricky[rng.random_range(from..self.tricky.len())]
        } else {
            between(rng, lo, self.cfg.end)
        };
        let user = new_user(rng, &mut self.next_user, at);
        if user.get("id").is_some_and(Value::is_string) {
            self.known.push(Known {
                first: spot,
                last: at,
            });
        }
        (user, at)
    }
}

/// The fields of a generated row of `c` attributed at `at`, around its `user_data`.
fn row_fields(
    rng: &mut ChaCha8Rng,
    c: &Campaign,
    at: DateTime<Utc>,
    user_data: Map<String, Value>,
) -> Map<String, Value> {
    let mut fields = ad_fields(rng, c);
    let (installed, click) = install_times(rng, at);
    fields.insert("link".into(), json!(rng.random_bool(0.4).then(|| c.link())));
    fields.insert("installed_at".into(), json!(installed.map(ts)));
    fields.insert("store_click_at".into(), json!(click.map(ts)));
    fields.insert("user_data".into(), Value::Object(user_data));
    if rng.random_bool(0.01) {
        fields.insert("is_instagram".into(), json!(false));
    }
    fields
}

/// When the app was installed (~90% known) and its store page clicked (~85% of those), before
/// an attribution at `at`.
fn install_times(
    rng: &mut ChaCha8Rng,
    at: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let installed = rng
        .random_bool(0.9)
        .then(|| at - TimeDelta::milliseconds(rng.random_range(60_000..=2_592_000_000)));
    let click = installed
        .filter(|_| rng.random_bool(0.85))
        .map(|i| i - TimeDelta::milliseconds(rng.random_range(5_000..=7_200_000)));
    (installed, click)
}

/// A signup that lands while a scan runs: a fresh user of `c` attributed in `[lo, hi]`.
pub(crate) fn fresh_row(
    rng: &mut ChaCha8Rng,
    c: &Campaign,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    uid: u64,
) -> Row {
    let at = between(rng, lo, hi);
    // Generated users step the counter by at most 9 each, so uid * 10 is past all of them.
    let mut next = uid * 10;
    let mut fields = ad_fields(rng, c);
    fields.insert("link".into(), json!(c.link()));
    fields.insert("installed_at".into(), json!(ts(at - TimeDelta::minutes(5))));
    fields.insert("store_click_at".into(), Value::Null);
    let user = new_user(rng, &mut next, at);
    fields.insert("user_data".into(), Value::Object(user));
    Row::new(uid, at, None, fields)
}

/// Ad fields: filled for META and GOOGLE campaigns from a few ad sets and creatives per campaign,
/// null otherwise, and now and then "" where null is meant (as in the docs' own examples); an
/// Apple Search Ads campaign names only its channel.
fn ad_fields(rng: &mut ChaCha8Rng, c: &Campaign) -> Map<String, Value> {
    let (set, creative) = (rng.random_range(0..3), rng.random_range(0..4));
    let id = |k: u64| format!("1202{:014}", mix(c.salt ^ k) % 10u64.pow(14));
    let publisher = *["facebook", "instagram", "audience_network"]
        .choose(rng)
        .unwrap();
    let position = *["feed", "story", "reels"].choose(rng).unwrap();
    let creative_name = ["Carousel_A", "Carousel_B", "Video_15s", "Static_Blue"][creative as usize];
    let set_name = ["Lookalike 2%", "Broad IN", "Retarget 30d"][set as usize];
    let mut m = object(json!({
        "ad_channel": if c.meta { "META" } else { "GOOGLE" },
        "meta_ad_id": c.meta.then(|| id(100 + set * 10 + creative)),
        "ad_creative_id": id(10 + creative),
        "ad_creative_name": creative_name,
        "ad_set_id": id(set),
        "ad_set_name": set_name,
        "publisher_platform": c.meta.then_some(publisher),
        "platform_position": c.meta.then_some(position),
    }));
    for v in m.values_mut() {
        if !c.meta && !c.google {
            *v = Value::Null;
        }
        if v.is_null() && rng.random_bool(0.05) {
            *v = json!("");
        }
    }
    // After the draws above, which must not change: their number depends on the nulls.
    if c.apple_search_ads {
        m.insert("ad_channel".into(), json!("APPLE_SEARCH_ADS"));
    }
    m
}
