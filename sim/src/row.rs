//! One attributed-user row, and the JSON text it is served as.

use crate::clock::ts;
use crate::hash::mix;
use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};
use std::cell::OnceCell;

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

/// One attributed-user row. Its fields are private so that every change goes through a method
/// that keeps the cached text and the campaign's indexes true.
pub(crate) struct Row {
    /// Identity of the row, hashed with the campaign salt into `order`.
    uid: u64,
    order: u64,
    attributed_at: DateTime<Utc>,
    /// The simulated install that signed up, for rows made through `/api/client/trigger`.
    install: Option<String>,
    /// Every field except `attributed_at`, `campaign_display_id` and `campaign_name`.
    fields: Map<String, Value>,
    /// The row as `GET /attributed-users` serves it, rendered on first use.
    served: OnceCell<Box<str>>,
}

impl Row {
    pub(crate) fn new(
        uid: u64,
        attributed_at: DateTime<Utc>,
        install: Option<String>,
        fields: Map<String, Value>,
    ) -> Row {
        Row {
            uid,
            order: 0,
            attributed_at,
            install,
            fields,
            served: OnceCell::new(),
        }
    }

    pub(crate) fn uid(&self) -> u64 {
        self.uid
    }

    /// Place in the served order; unique within a campaign, as [`mix`] is a bijection.
    pub(crate) fn order(&self) -> u64 {
        self.order
    }

    /// Sets [`Row::order`] under `salt`; only for [`crate::rows::Rows`], which keeps its rows
    /// sorted by it.
    pub(super) fn place(&mut self, salt: u64) {
        self.order = order_of(self.uid, salt);
    }

    pub(crate) fn attributed_at(&self) -> DateTime<Utc> {
        self.attributed_at
    }

    pub(crate) fn install(&self) -> Option<&str> {
        self.install.as_deref()
    }

    pub(crate) fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The fields, to change; the served text was rendered from them, so it is dropped.
    pub(crate) fn fields_mut(&mut self) -> &mut Map<String, Value> {
        self.forget_served();
        &mut self.fields
    }

    /// The served text, rendered by `render` the first time and kept until the row changes.
    pub(crate) fn served(&self, render: impl FnOnce() -> String) -> &str {
        self.served.get_or_init(|| render().into_boxed_str())
    }

    pub(crate) fn forget_served(&mut self) {
        self.served.take();
    }

    /// The row as an item of `GET /attributed-users`, naming its campaign (`display_id` and
    /// `name`) as it is now.
    pub(crate) fn to_json(&self, (display_id, name): (&str, &str)) -> Value {
        let mut m = self.fields.clone();
        m.insert("attributed_at".into(), json!(ts(self.attributed_at)));
        m.insert("campaign_display_id".into(), json!(display_id));
        m.insert("campaign_name".into(), json!(name));
        Value::Object(m)
    }

    /// `to_json(campaign).to_string()`, written straight from the fields instead of a copy of
    /// them.
    pub(crate) fn to_json_text(&self, (display_id, name): (&str, &str)) -> String {
        let at = ts(self.attributed_at);
        let added = [
            ("attributed_at", at.as_str()),
            ("campaign_display_id", display_id),
            ("campaign_name", name),
        ];
        let view = Merged {
            fields: &self.fields,
            added,
        };
        serde_json::to_string(&view).expect("JSON values always serialize")
    }

    pub(crate) fn user_data(&self) -> Option<&Map<String, Value>> {
        self.fields.get("user_data").and_then(Value::as_object)
    }

    pub(crate) fn user_id(&self) -> Option<&str> {
        self.user_data()?.get("id")?.as_str()
    }

    /// The advertising ids of the user's device; see [`ad_ids`].
    pub(crate) fn ad_ids(&self) -> impl Iterator<Item = &str> {
        ad_ids(self.user_data().and_then(|u| u.get("device_data")))
    }

    /// True when the device's advertising id (GAID or IDFA) is `id`, in any letter case.
    pub(crate) fn has_device(&self, id: &str) -> bool {
        self.ad_ids().any(|a| a.eq_ignore_ascii_case(id))
    }
}

/// The place in the served order of the row with `uid` under `salt`.
pub(crate) fn order_of(uid: u64, salt: u64) -> u64 {
    mix(salt ^ mix(uid))
}

/// The advertising ids (GAID, IDFA) in a `device_data` object, leaving out empty ones and the
/// all-zero IDFA a device reports when tracking is off: neither names a device.
pub(crate) fn ad_ids(device: Option<&Value>) -> impl Iterator<Item = &str> {
    let named = |id: &&str| id.bytes().any(|b| b != b'0' && b != b'-');
    ["gaid", "idfa"]
        .into_iter()
        .filter_map(move |k| device?.get(k)?.as_str())
        .filter(named)
}

/// A map of `fields` plus the `added` string entries, written in key order as serde_json writes
/// a [`Map`]: both lists are sorted (serde_json's map is a B-tree), so they merge in one pass,
/// and an added key replaces a field of the same name, as `insert` does.
struct Merged<'a> {
    fields: &'a Map<String, Value>,
    /// Sorted by key.
    added: [(&'static str, &'a str); 3],
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let mut added = self.added.iter().peekable();
        let mut last = None;
        for (k, v) in self.fields {
            while let Some((a, text)) = added.next_if(|(a, _)| *a <= k.as_str()) {
                map.serialize_entry(a, text)?;
                last = Some(*a);
            }
            if last != Some(k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        for (a, text) in added {
            map.serialize_entry(a, text)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn text_equals_the_written_out_tree() {
        let at = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        let c = ("a\"b", "Ünïcode \\ \u{1}");
        let fields = [
            json!({}),
            json!({ "a": 1, "zz": [null, "x"], "user_data": { "id": "u_1", "n": 1.5 } }),
            // Keys around and equal to the added ones, and an empty key.
            json!({ "": 0, "attributed_at": 1, "b": 2, "campaign_name": 3, "campaign_x": 4 }),
            json!({ "attributed_a": 1, "campaign_display_id": null, "campaign_names": 5 }),
        ];
        for f in fields {
            let row = Row::new(7, at, None, f.as_object().unwrap().clone());
            assert_eq!(row.to_json_text(c), row.to_json(c).to_string());
        }
    }

    #[test]
    fn changing_fields_drops_the_served_text() {
        let at = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        let mut r = Row::new(1, at, None, Map::new());
        assert_eq!(r.served(|| "a".into()), "a");
        assert_eq!(r.served(|| "b".into()), "a");
        r.fields_mut().insert("k".into(), json!(1));
        assert_eq!(r.served(|| "c".into()), "c");
    }
}
