//! The simulator's campaigns and how the API renders them; their rows live in [`crate::rows`].

use crate::clock::ts;
use crate::counter::Counter;
use crate::hash::mix;
use crate::project::{LISTINGS, PROJECT_DOMAINS};
use crate::row::{order_of, Row};
use crate::rows::Rows;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// A campaign with its rows.
pub(crate) struct Campaign {
    /// Internal id; a campaign re-created under a deleted display id gets a new one.
    pub uid: u64,
    pub display_id: String,
    /// Private: every row's served text names the campaign, so a rename goes through
    /// [`Campaign::rename`].
    name: String,
    pub created_at: DateTime<Utc>,
    pub update_at: DateTime<Utc>,
    pub google: bool,
    pub meta: bool,
    /// Runs on Apple Search Ads: not shown in the campaign list, but its rows carry the channel
    /// and their attribution results a keyword.
    pub apple_search_ads: bool,
    /// `Some("")` stands for the empty string the docs show where null is meant.
    pub meta_campaign_id: Option<String>,
    pub meta_web_to_app: bool,
    pub active: bool,
    pub default_link: bool,
    pub domain: Option<String>,
    pub deeplink: Option<String>,
    /// Indexes into [`LISTINGS`].
    pub store_listings: Vec<usize>,
    /// Undocumented keys (`website`, `network_account`, ...), rendered as they are.
    pub extra: Map<String, Value>,
    /// Salt of the row order (set it directly only before there are rows); re-salting moves
    /// rows between pages.
    pub salt: u64,
    /// How its `attributed_users` counter relates to its rows.
    pub counter: Counter,
    /// When each row added after the data set was generated arrived, for a lagging counter.
    arrivals: Vec<Instant>,
    /// In the order `GET /attributed-users` pages through.
    rows: Rows,
}

/// What a campaign's generated rows draw their ad fields from; none of it changes after the
/// campaign is made, so a row reads the same on every draw.
pub(crate) struct AdContext {
    pub(crate) meta: bool,
    pub(crate) google: bool,
    pub(crate) apple_search_ads: bool,
    /// Salts the ad ids; from the uid, as the row-order salt moves.
    pub(crate) ad_salt: u64,
    pub(crate) link: String,
}

impl Campaign {
    /// A campaign with the create-campaign defaults: active, no ad network, no rows.
    pub(crate) fn new(uid: u64, display_id: String, name: String, at: DateTime<Utc>) -> Self {
        Campaign {
            uid,
            display_id,
            name,
            created_at: at,
            update_at: at,
            google: false,
            meta: false,
            apple_search_ads: false,
            meta_campaign_id: None,
            meta_web_to_app: false,
            active: true,
            default_link: false,
            domain: None,
            deeplink: None,
            store_listings: Vec::new(),
            extra: Map::new(),
            salt: mix(uid),
            counter: Counter::Honest,
            arrivals: Vec::new(),
            rows: Rows::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Renames the campaign; its rows' served texts carry the old name, so they are dropped.
    pub(crate) fn rename(&mut self, name: String) {
        self.name = name;
        self.rows.forget_served();
    }

    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    /// The row with `uid`, found through its place in the served order.
    pub(crate) fn row(&self, uid: u64) -> Option<&Row> {
        let row = self.rows.find(order_of(uid, self.salt))?;
        (row.uid() == uid).then_some(row)
    }

    /// The rows, to change their fields (which drops their served texts), with what their
    /// fields are drawn from.
    pub(crate) fn rows_mut(&mut self) -> (AdContext, std::slice::IterMut<'_, Row>) {
        (self.ad_context(), self.rows.iter_mut())
    }

    /// Drops every row's served text, when the rendering faults change.
    pub(crate) fn forget_served(&mut self) {
        self.rows.forget_served();
    }

    /// Replaces the rows, putting them in order under the current salt.
    pub(crate) fn set_rows(&mut self, rows: Vec<Row>) {
        self.rows = Rows::new(rows, self.salt);
    }

    pub(crate) fn ad_context(&self) -> AdContext {
        AdContext {
            meta: self.meta,
            google: self.google,
            apple_search_ads: self.apple_search_ads,
            ad_salt: mix(self.uid ^ 0xAD5A17),
            link: self.link(),
        }
    }

    /// The long link; a campaign without a domain uses the project's primary one.
    pub(crate) fn link(&self) -> String {
        format!("https://{}/?c={}", self.link_domain(), self.display_id)
    }

    pub(crate) fn link_domain(&self) -> &str {
        self.domain.as_deref().unwrap_or(PROJECT_DOMAINS[0])
    }

    pub(crate) fn listings_json(&self) -> Value {
        let listings = self.store_listings.iter().map(|&i| {
            let (id, name, platform) = LISTINGS[i];
            json!({ "store_listing_id": id, "name": name, "platform": platform })
        });
        Value::Array(listings.collect())
    }

    /// The campaign as an item of `GET /campaigns`.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "display_id": self.display_id,
            "name": self.name,
            "created_at": ts(self.created_at),
            "update_at": ts(self.update_at),
            "google": self.google,
            "meta": self.meta,
            "meta_campaign_id": self.meta_campaign_id,
            "meta_web_to_app": self.meta_web_to_app,
            "active": self.active,
            "default_link": self.default_link,
            "attributed_users": self.counter_value(),
            "link": self.link(),
            "shareable_link": format!("https://{}/{}", self.link_domain(), self.display_id),
            "domain": self.domain,
            "store_listings": self.listings_json(),
        });
        if let Value::Object(m) = &mut v {
            m.extend(self.extra.clone());
        }
        v
    }

    /// What the campaign list says `attributed_users` is, lies included.
    pub(crate) fn counter_value(&self) -> u64 {
        self.counter.value(self.rows.len(), &self.arrivals)
    }

    /// Adds a row at its place in the current order; it arrives now.
    pub(crate) fn insert_row(&mut self, row: Row) {
        self.rows.insert(row, self.salt);
        self.arrivals.push(Instant::now());
    }

    /// Takes out the row at `order` (see [`Row::order`]).
    pub(crate) fn remove_row(&mut self, order: u64) -> Option<Row> {
        self.rows.remove(order)
    }

    /// Re-orders every row under a new salt, as concurrent writes reshuffle the real API's pages.
    pub(crate) fn resalt(&mut self, salt: u64) {
        self.salt = salt;
        self.rows.resalt(salt);
    }
}
