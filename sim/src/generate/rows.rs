//! Generated attributed-user rows: when each user was attributed, the ad behind it, and which
//! users come back to be attributed again.
//!
//! The data set's generator draws only each row's skeleton (campaign, time, user); a row's
//! fields are drawn from a generator of its own, seeded by its uid, whenever they are read.

use super::draw::{between, object};
use super::users::{has_id, new_user};
use crate::clock::ts;
use crate::config::SimConfig;
use crate::data::{AdContext, Campaign};
use crate::hash::mix;
use crate::row::{Drawn, Row};
use chrono::{DateTime, TimeDelta, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A user with an id: their first row, and when they were last attributed.
struct Known {
    user: u64,
    user_at: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// Where the generated rows went, so a look-up finds a user's rows from their id alone.
#[derive(Default)]
pub(crate) struct People {
    /// Uid of the first generated row; the rows' uids follow on.
    pub(crate) first: u64,
    /// Campaign uid of each generated row, by uid − `first`.
    pub(crate) home: Vec<u32>,
    /// The uids of each re-attributed user's later rows, by the uid of their first row.
    pub(crate) again: HashMap<u64, Vec<u64>>,
}

impl People {
    /// The generated rows of the user whose first row has uid `user`, with their campaign uids.
    pub(crate) fn rows_of(&self, user: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let later = self.again.get(&user).into_iter().flatten().copied();
        std::iter::once(user).chain(later).filter_map(|uid| {
            let at = usize::try_from(uid.checked_sub(self.first)?).ok()?;
            Some((uid, u64::from(*self.home.get(at)?)))
        })
    }
}

/// Draws the data set's rows in order, remembering users with an id so some can be attributed
/// again later.
pub(super) struct RowMaker<'a> {
    cfg: &'a SimConfig,
    salt: u64,
    /// See [`super::instants::tricky_instants`].
    tricky: Vec<DateTime<Utc>>,
    known: Vec<Known>,
    /// The rows so far, by campaign index.
    rows: Vec<Vec<Row>>,
    people: People,
}

impl<'a> RowMaker<'a> {
    pub(super) fn new(cfg: &'a SimConfig, tricky: Vec<DateTime<Utc>>, campaigns: usize) -> Self {
        RowMaker {
            cfg,
            salt: data_salt(cfg.seed),
            tricky,
            known: Vec::new(),
            rows: (0..campaigns).map(|_| Vec::new()).collect(),
            people: People {
                first: cfg.campaigns as u64 + 1,
                ..People::default()
            },
        }
    }

    /// One row for each target (a campaign index), in order; the rows by campaign index.
    pub(super) fn make(
        mut self,
        rng: &mut ChaCha8Rng,
        campaigns: &[Campaign],
        targets: Vec<usize>,
    ) -> (Vec<Vec<Row>>, People) {
        self.people.home.reserve_exact(targets.len());
        for (n, ci) in targets.into_iter().enumerate() {
            let uid = self.people.first + n as u64;
            let c = &campaigns[ci];
            let (at, drawn) = self.row(rng, c, uid);
            self.rows[ci].push(Row::drawn(uid, at, drawn));
            self.people.home.push(c.uid as u32);
        }
        (self.rows, self.people)
    }

    /// `attributed_at` of the next row of `c`, with uid `uid`, and what its fields are drawn
    /// from.
    fn row(&mut self, rng: &mut ChaCha8Rng, c: &Campaign, uid: u64) -> (DateTime<Utc>, Drawn) {
        let lo = c.created_at;
        let (user, user_at, at) = match self.reattributed(rng, lo) {
            Some(i) => {
                let known = &mut self.known[i];
                let from = known.last.max(lo) + TimeDelta::milliseconds(1);
                let at = between(rng, from, self.cfg.end);
                known.last = at;
                self.people.again.entry(known.user).or_default().push(uid);
                (known.user, known.user_at, at)
            }
            None => {
                let at = self.attribute_new(rng, lo, uid);
                (uid, at, at)
            }
        };
        let salt = self.salt;
        (
            at,
            Drawn {
                salt,
                user,
                user_at,
            },
        )
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

    /// When a new user, of first row `uid`, is attributed from `lo` on, ~10% of them at a
    /// tricky instant; a user with an id is remembered.
    fn attribute_new(
        &mut self,
        rng: &mut ChaCha8Rng,
        lo: DateTime<Utc>,
        uid: u64,
    ) -> DateTime<Utc> {
        let from = self.tricky.partition_point(|t| *t < lo);
        let at = if rng.random_bool(0.1) && from < self.tricky.len() {
            self.tricky[rng.random_range(from..self.tricky.len())]
        } else {
            between(rng, lo, self.cfg.end)
        };
        if has_id(self.salt, uid) {
            self.known.push(Known {
                user: uid,
                user_at: at,
                last: at,
            });
        }
        at
    }
}

/// Salts every generated row's own generator, from the data set's seed.
pub(super) fn data_salt(seed: u64) -> u64 {
    mix(seed ^ 0xD2A3_5A17)
}

/// The generator of one thing (`what`) of the row or user with uid `uid`.
pub(super) fn own_rng(salt: u64, what: u64, uid: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(salt ^ what) ^ uid))
}

const FIELDS: u64 = 0xF1E1D5;

/// The fields of generated row `uid`, attributed at `at`, of the campaign `c` describes.
pub(crate) fn draw_fields(
    d: &Drawn,
    uid: u64,
    at: DateTime<Utc>,
    c: &AdContext,
) -> Map<String, Value> {
    let mut rng = own_rng(d.salt, FIELDS, uid);
    row_fields(&mut rng, c, at, super::users::draw_user(d))
}

/// The ad fields of generated row `uid` alone: the first draws of its generator.
pub(crate) fn draw_ad_fields(d: &Drawn, uid: u64, c: &AdContext) -> Map<String, Value> {
    ad_fields(&mut own_rng(d.salt, FIELDS, uid), c)
}

/// The fields of a generated row of `c` attributed at `at`, around its `user_data`.
fn row_fields(
    rng: &mut ChaCha8Rng,
    c: &AdContext,
    at: DateTime<Utc>,
    user_data: Map<String, Value>,
) -> Map<String, Value> {
    let mut fields = ad_fields(rng, c);
    let (installed, click) = install_times(rng, at);
    fields.insert(
        "link".into(),
        json!(rng.random_bool(0.4).then(|| c.link.clone())),
    );
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
    let c = c.ad_context();
    let mut fields = ad_fields(rng, &c);
    fields.insert("link".into(), json!(c.link));
    fields.insert("installed_at".into(), json!(ts(at - TimeDelta::minutes(5))));
    fields.insert("store_click_at".into(), Value::Null);
    let user = new_user(rng, uid, at);
    fields.insert("user_data".into(), Value::Object(user));
    Row::new(uid, at, None, fields)
}

/// Ad fields: filled for META and GOOGLE campaigns from a few ad sets and creatives per campaign,
/// null otherwise, and now and then "" where null is meant (as in the docs' own examples); an
/// Apple Search Ads campaign names only its channel.
fn ad_fields(rng: &mut ChaCha8Rng, c: &AdContext) -> Map<String, Value> {
    let (set, creative) = (rng.random_range(0..3), rng.random_range(0..4));
    let id = |k: u64| format!("1202{:014}", mix(c.ad_salt ^ k) % 10u64.pow(14));
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
