//! `GET /get-attribution-result`: the latest attribution of a user id, else of an advertising
//! id (GAID or IDFA), answered from the look-up index in the state. Auth, rate limit and faults
//! are handled before it runs, as for the other Data API routes (see `faults`).

use crate::data::Campaign;
use crate::hash::mix;
use crate::lookup::{Hit, Source};
use crate::reply::{fail, ok, Reply};
use crate::row::Row;
use crate::state::{Simulator, State as SimState};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const APPLE_SEARCH_ADS: &str = "APPLE_SEARCH_ADS";

/// Search terms of the simulated app, for Apple Search Ads keywords.
const KEYWORDS: [&str; 5] = [
    "example shop",
    "shopping app",
    "online deals",
    "buy sneakers",
    "fashion sale",
];

/// The `user_id` and `device_identifier` the index was asked for, ignoring empty ones.
#[derive(Clone, Copy)]
struct Asked<'q> {
    user: Option<&'q str>,
    device: Option<&'q str>,
}

/// What a hit was found under, which its source must still have.
#[derive(Clone, Copy)]
enum Key<'q> {
    User(&'q str),
    Device(&'q str),
}

/// The index pointed at something gone; rebuilding it and asking again fixes that.
struct Stale;

/// `GET /get-attribution-result`: by `user_id` if that user has an attribution, else by
/// `device_identifier`; 204 with an empty body when neither has one.
pub(crate) async fn attribution_result(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let given = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let asked = Asked {
        user: given("user_id"),
        device: given("device_identifier"),
    };
    if asked.user.is_none() && asked.device.is_none() {
        let msg = "Either device_identifier or user_id is required.";
        return fail(StatusCode::BAD_REQUEST, msg);
    }
    match sim.lock().attribution(asked) {
        Some(data) => ok(
            StatusCode::OK,
            "Attribution result retrieved successfully.",
            data,
        ),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

impl SimState {
    /// The answer's `data`, counted in the stats.
    fn attribution(&mut self, asked: Asked) -> Option<Value> {
        self.lookup();
        let found = self.answer(asked).unwrap_or_else(|Stale| {
            self.lookup.invalidate();
            self.lookup();
            self.answer(asked).ok().flatten()
        });
        let counter = match found {
            Some(_) => &mut self.stats.attribution_found,
            None => &mut self.stats.attribution_not_found,
        };
        *counter += 1;
        found
    }

    /// A user id's latest hit wins over a device's, whichever installs they point at.
    fn answer(&self, asked: Asked) -> Result<Option<Value>, Stale> {
        let user = asked
            .user
            .and_then(|u| Some((self.lookup.user(u, &self.campaigns)?, Key::User(u))));
        let device = || {
            let d = asked.device?;
            Some((self.lookup.device(d, &self.campaigns)?, Key::Device(d)))
        };
        match user.or_else(device) {
            Some((hit, key)) => self.resolve(&hit, key).map(Some).ok_or(Stale),
            None => Ok(None),
        }
    }

    /// The result a hit stands for, if its row or install is still there and still has `key`.
    fn resolve(&self, hit: &Hit, key: Key) -> Option<Value> {
        match &hit.source {
            Source::Row { campaign, row } => {
                let c = self.live(*campaign, self.lookup.display_id(*campaign)?)?;
                let r = c.row(*row).filter(|r| key.is_in_row(r))?;
                Some(Value::Object(row_result(self.config.seed, c, r)))
            }
            Source::Install(iid) => {
                let Key::Device(d) = key else { return None };
                let install = self.installs.get(&**iid).filter(|i| i.has_device(d))?;
                let result = match &install.campaign {
                    None => organic(),
                    Some((uid, id)) => through(self.live(*uid, id)?),
                };
                Some(Value::Object(result))
            }
            // Organic signups are never taken back.
            Source::Signup(_) => Some(Value::Object(organic())),
        }
    }

    /// The campaign with display id `id`, if it is still the one with `uid`.
    fn live(&self, uid: u64, id: &str) -> Option<&Campaign> {
        self.campaigns.get(id).filter(|c| c.uid == uid)
    }
}

impl Key<'_> {
    fn is_in_row(self, r: &Row) -> bool {
        match self {
            Key::User(u) => r.user_id().as_deref() == Some(u),
            Key::Device(d) => r.has_device(d),
        }
    }
}

/// No campaign and no ad; the keywords as `""`, like the docs' example.
fn organic() -> Map<String, Value> {
    let nulls = [
        "campaign_name",
        "display_id",
        "deeplink",
        "domain_name",
        "ad_set_id",
        "ad_set_name",
        "ad_creative_id",
        "ad_creative_name",
        "ad_network",
    ];
    let mut m: Map<String, Value> = nulls.iter().map(|k| (k.to_string(), Value::Null)).collect();
    m.insert("keyword_id".into(), json!(""));
    m.insert("keyword_name".into(), json!(""));
    m.insert("attribution_type".into(), json!("ORGANIC"));
    m
}

/// Attributed to campaign `c` through its link: no ad network behind it.
fn through(c: &Campaign) -> Map<String, Value> {
    let mut m = organic();
    m.insert("campaign_name".into(), json!(c.name()));
    m.insert("display_id".into(), json!(c.display_id));
    m.insert("deeplink".into(), json!(c.deeplink));
    m.insert("domain_name".into(), json!(c.link_domain()));
    m.insert("attribution_type".into(), json!("INORGANIC"));
    m
}

/// Row `r` of campaign `c`: its ad fields as stored ("" included) and its channel as the
/// network; a keyword only on an Apple Search Ads row.
fn row_result(seed: u64, c: &Campaign, r: &Row) -> Map<String, Value> {
    let mut m = through(c);
    let fields = r.fields(&c.ad_context());
    for k in [
        "ad_set_id",
        "ad_set_name",
        "ad_creative_id",
        "ad_creative_name",
    ] {
        m.insert(k.into(), fields.get(k).cloned().unwrap_or(Value::Null));
    }
    let channel = fields.get("ad_channel").and_then(Value::as_str);
    let network = channel.filter(|ch| !ch.is_empty());
    m.insert("ad_network".into(), json!(network));
    if network == Some(APPLE_SEARCH_ADS) {
        let (id, name) = keyword(seed, c.uid, r.uid());
        m.insert("keyword_id".into(), json!(id));
        m.insert("keyword_name".into(), json!(name));
    }
    m
}

/// The keyword behind an Apple Search Ads row, from a seeded hash of the row: the stored rows
/// have no keyword field, and a draw would have changed the generated data. Ids are numeric, as
/// Apple's are, and fixed per campaign and keyword.
fn keyword(seed: u64, campaign_uid: u64, row_uid: u64) -> (String, &'static str) {
    let k = mix(mix(seed ^ 0x6E7) ^ row_uid) % KEYWORDS.len() as u64;
    let id = 100_000_000 + mix(mix(seed ^ campaign_uid) ^ k) % 900_000_000;
    (id.to_string(), KEYWORDS[k as usize])
}
