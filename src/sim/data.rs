//! The simulator's records, campaigns and attributed-user rows, and how the API renders them.

use super::{mix, PROJECT_DOMAINS};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// Store listings of the simulated project: (id, name, platform).
pub(crate) const LISTINGS: [(&str, &str, &str); 4] = [
    ("ios-main", "App Store – main", "IOS"),
    ("play-main", "Play Store – main", "ANDROID"),
    ("play-promo", "Play Store – promo", "ANDROID"),
    ("ios-beta", "App Store – beta", "IOS"),
];

/// Row fields that describe the ad behind an attribution.
pub(crate) const AD_KEYS: [&str; 8] = [
    "ad_channel",
    "meta_ad_id",
    "ad_creative_id",
    "ad_creative_name",
    "ad_set_id",
    "ad_set_name",
    "publisher_platform",
    "platform_position",
];

/// A campaign with its rows.
pub(crate) struct Campaign {
    /// Internal id; a campaign re-created under a deleted display id gets a new one.
    pub uid: u64,
    pub display_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub update_at: DateTime<Utc>,
    pub google: bool,
    pub meta: bool,
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
    /// Salt of the row order; re-salting moves rows between pages.
    pub salt: u64,
    /// Kept sorted by [`Row::order`], the order `GET /attributed-users` pages through.
    pub rows: Vec<Row>,
}

/// One attributed-user row.
pub(crate) struct Row {
    /// Identity of the row, hashed with the campaign salt into `order`.
    pub uid: u64,
    pub order: u64,
    pub attributed_at: DateTime<Utc>,
    /// The simulated install that signed up, for rows made through `/api/client/trigger`.
    pub install: Option<String>,
    /// Every field except `attributed_at`, `campaign_display_id` and `campaign_name`.
    pub fields: Map<String, Value>,
}

/// ISO 8601 UTC with exactly three fractional digits and `Z`, as the API writes timestamps.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Listing indexes for ids; `Err` carries the unknown ids.
pub(crate) fn listing_indexes<S: AsRef<str>>(ids: &[S]) -> Result<Vec<usize>, Vec<String>> {
    let found: Vec<Option<usize>> = ids
        .iter()
        .map(|id| LISTINGS.iter().position(|l| l.0 == id.as_ref()))
        .collect();
    let unknown: Vec<String> = ids
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(id, _)| id.as_ref().to_string())
        .collect();
    if unknown.is_empty() {
        Ok(found.into_iter().flatten().collect())
    } else {
        Err(unknown)
    }
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
            meta_campaign_id: None,
            meta_web_to_app: false,
            active: true,
            default_link: false,
            domain: None,
            deeplink: None,
            store_listings: Vec::new(),
            extra: Map::new(),
            salt: mix(uid),
            rows: Vec::new(),
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
            "attributed_users": self.rows.len(),
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

    /// Adds a row at its place in the current order.
    pub(crate) fn insert_row(&mut self, mut row: Row) {
        row.order = mix(self.salt ^ mix(row.uid));
        let at = self.rows.partition_point(|r| r.order < row.order);
        self.rows.insert(at, row);
    }

    /// Re-orders every row under a new salt, as concurrent writes reshuffle the real API's pages.
    pub(crate) fn resalt(&mut self, salt: u64) {
        self.salt = salt;
        for r in &mut self.rows {
            r.order = mix(salt ^ mix(r.uid));
        }
        self.rows.sort_by_key(|r| (r.order, r.uid));
    }
}

impl Row {
    /// The row as an item of `GET /attributed-users`, naming the campaign as it is now.
    pub(crate) fn to_json(&self, c: &Campaign) -> Value {
        let mut m = self.fields.clone();
        m.insert("attributed_at".into(), json!(ts(self.attributed_at)));
        m.insert("campaign_display_id".into(), json!(c.display_id));
        m.insert("campaign_name".into(), json!(c.name));
        Value::Object(m)
    }

    pub(crate) fn user_data(&self) -> Option<&Map<String, Value>> {
        self.fields.get("user_data").and_then(Value::as_object)
    }

    pub(crate) fn user_id(&self) -> Option<&str> {
        self.user_data()?.get("id")?.as_str()
    }

    /// True when the device's advertising id (GAID or IDFA) is `id`.
    pub(crate) fn has_device(&self, id: &str) -> bool {
        let device = self.user_data().and_then(|u| u.get("device_data"));
        ["gaid", "idfa"]
            .iter()
            .any(|k| device.and_then(|d| d.get(*k)).and_then(Value::as_str) == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(uid: u64) -> Row {
        let attributed_at = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        let fields = Map::new();
        Row {
            uid,
            order: 0,
            attributed_at,
            install: None,
            fields,
        }
    }

    #[test]
    fn timestamps_have_three_fraction_digits_and_z() {
        let t = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        assert_eq!(ts(t), "2026-05-28T20:26:40.000Z");
    }

    #[test]
    fn resalting_keeps_rows_but_changes_their_order() {
        let mut c = Campaign::new(1, "abc123".into(), "A".into(), Utc::now());
        (0..50).for_each(|uid| c.insert_row(row(uid)));
        let before: Vec<u64> = c.rows.iter().map(|r| r.uid).collect();
        assert!(c.rows.windows(2).all(|w| w[0].order <= w[1].order));
        c.resalt(99);
        let after: Vec<u64> = c.rows.iter().map(|r| r.uid).collect();
        assert_ne!(before, after);
        let (mut a, mut b) = (before, after);
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn unknown_listing_ids_are_reported() {
        assert_eq!(listing_indexes(&["play-main", "ios-beta"]), Ok(vec![1, 3]));
        assert_eq!(listing_indexes(&["nope"]), Err(vec!["nope".to_string()]));
    }
}
