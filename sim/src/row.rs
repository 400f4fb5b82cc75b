//! One attributed-user row, and the JSON text it is served as.

use crate::clock::ts;
use crate::data::{AdContext, Campaign};
use crate::generate::{draw_ad_fields, draw_fields, draw_user, drawn_user_id};
use crate::hash::mix;
use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
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
    body: Body,
}

/// A generated row holds only what its fields are drawn from, so ten million rows fit in
/// memory; a row made or changed through the API holds its fields.
enum Body {
    Drawn(Drawn),
    Owned(Box<Owned>),
}

/// What a generated row's fields are drawn from, again on every read (see
/// [`crate::generate::draw_fields`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Drawn {
    /// The data set's salt, from its seed.
    pub(crate) salt: u64,
    /// The user: the uid of their first row, and when that row was attributed.
    pub(crate) user: u64,
    pub(crate) user_at: DateTime<Utc>,
}

struct Owned {
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
        let owned = Owned {
            install,
            fields,
            served: OnceCell::new(),
        };
        Row {
            uid,
            order: 0,
            attributed_at,
            body: Body::Owned(Box::new(owned)),
        }
    }

    /// A generated row whose fields are drawn from `drawn` when read.
    pub(crate) fn drawn(uid: u64, attributed_at: DateTime<Utc>, drawn: Drawn) -> Row {
        Row {
            uid,
            order: 0,
            attributed_at,
            body: Body::Drawn(drawn),
        }
    }

    pub(crate) fn uid(&self) -> u64 {
        self.uid
    }

    /// True for a generated row nothing has changed; its keys are found without an index.
    pub(crate) fn is_drawn(&self) -> bool {
        matches!(self.body, Body::Drawn(_))
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
        match &self.body {
            Body::Owned(o) => o.install.as_deref(),
            Body::Drawn(_) => None,
        }
    }

    /// The fields of the row, of campaign `c`.
    pub(crate) fn fields(&self, c: &AdContext) -> Cow<'_, Map<String, Value>> {
        match &self.body {
            Body::Owned(o) => Cow::Borrowed(&o.fields),
            Body::Drawn(d) => Cow::Owned(draw_fields(d, self.uid, self.attributed_at, c)),
        }
    }

    /// The fields that describe the ad (see [`AD_KEYS`]), with others when they are at hand.
    pub(crate) fn ad_fields(&self, c: &AdContext) -> Cow<'_, Map<String, Value>> {
        match &self.body {
            Body::Owned(o) => Cow::Borrowed(&o.fields),
            Body::Drawn(d) => Cow::Owned(draw_ad_fields(d, self.uid, c)),
        }
    }

    /// The fields, to change; the served text was rendered from them, so it is dropped.
    pub(crate) fn fields_mut(&mut self, c: &AdContext) -> &mut Map<String, Value> {
        if let Body::Drawn(d) = &self.body {
            let fields = draw_fields(d, self.uid, self.attributed_at, c);
            *self = Row::new(self.uid, self.attributed_at, None, fields).placed(self.order);
        }
        let Body::Owned(o) = &mut self.body else {
            unreachable!("made owned above")
        };
        o.served.take();
        &mut o.fields
    }

    fn placed(mut self, order: u64) -> Row {
        self.order = order;
        self
    }

    /// The served text, rendered by `render`; kept until the row changes when the row holds
    /// its fields, rendered again on every read when they are drawn.
    pub(crate) fn served(&self, render: impl FnOnce() -> String) -> Cow<'_, str> {
        match &self.body {
            Body::Owned(o) => Cow::Borrowed(o.served.get_or_init(|| render().into_boxed_str())),
            Body::Drawn(_) => Cow::Owned(render()),
        }
    }

    pub(crate) fn forget_served(&mut self) {
        if let Body::Owned(o) = &mut self.body {
            o.served.take();
        }
    }

    /// The row as an item of `GET /attributed-users`, naming its campaign as it is now.
    pub(crate) fn to_json(&self, c: &Campaign) -> Value {
        let mut m = self.fields(&c.ad_context()).into_owned();
        m.insert("attributed_at".into(), json!(ts(self.attributed_at)));
        m.insert("campaign_display_id".into(), json!(c.display_id));
        m.insert("campaign_name".into(), json!(c.name()));
        Value::Object(m)
    }

    /// `to_json(c).to_string()`, written straight from the fields instead of a copy of them.
    pub(crate) fn to_json_text(&self, c: &Campaign) -> String {
        let at = ts(self.attributed_at);
        let added = [
            ("attributed_at", at.as_str()),
            ("campaign_display_id", c.display_id.as_str()),
            ("campaign_name", c.name()),
        ];
        let view = Merged {
            fields: &self.fields(&c.ad_context()),
            added,
        };
        serde_json::to_string(&view).expect("JSON values always serialize")
    }

    pub(crate) fn user_data(&self) -> Option<Cow<'_, Map<String, Value>>> {
        match &self.body {
            Body::Owned(o) => o.fields.get("user_data")?.as_object().map(Cow::Borrowed),
            Body::Drawn(d) => Some(Cow::Owned(draw_user(d))),
        }
    }

    pub(crate) fn user_id(&self) -> Option<Cow<'_, str>> {
        match &self.body {
            Body::Owned(o) => {
                let id = o.fields.get("user_data")?.get("id")?.as_str()?;
                Some(Cow::Borrowed(id))
            }
            Body::Drawn(d) => drawn_user_id(d).map(Cow::Owned),
        }
    }

    /// The advertising ids of the user's device; see [`ad_ids`].
    pub(crate) fn ad_ids(&self) -> Vec<String> {
        let user = self.user_data();
        let device = user.as_ref().and_then(|u| u.get("device_data"));
        ad_ids(device).map(String::from).collect()
    }

    /// True when the device's advertising id (GAID or IDFA) is `id`, in any letter case.
    pub(crate) fn has_device(&self, id: &str) -> bool {
        self.ad_ids().iter().any(|a| a.eq_ignore_ascii_case(id))
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
        let c = Campaign::new(1, "a\"b".into(), "Ünïcode \\ \u{1}".into(), at);
        let fields = [
            json!({}),
            json!({ "a": 1, "zz": [null, "x"], "user_data": { "id": "u_1", "n": 1.5 } }),
            // Keys around and equal to the added ones, and an empty key.
            json!({ "": 0, "attributed_at": 1, "b": 2, "campaign_name": 3, "campaign_x": 4 }),
            json!({ "attributed_a": 1, "campaign_display_id": null, "campaign_names": 5 }),
        ];
        for f in fields {
            let row = Row::new(7, at, None, f.as_object().unwrap().clone());
            assert_eq!(row.to_json_text(&c), row.to_json(&c).to_string());
        }
    }

    #[test]
    fn changing_fields_drops_the_served_text() {
        let at = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        let mut r = Row::new(1, at, None, Map::new());
        assert_eq!(r.served(|| "a".into()), "a");
        assert_eq!(r.served(|| "b".into()), "a");
        let c = Campaign::new(1, "c".into(), "C".into(), at);
        r.fields_mut(&c.ad_context()).insert("k".into(), json!(1));
        assert_eq!(r.served(|| "c".into()), "c");
    }

    #[test]
    fn a_drawn_row_keeps_its_fields_when_it_comes_to_hold_them() {
        let at = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        let c = Campaign::new(3, "c".into(), "C".into(), at);
        let drawn = Drawn {
            salt: 11,
            user: 40,
            user_at: at,
        };
        let mut r = Row::drawn(40, at, drawn);
        r.place(5);
        let (text, order) = (r.to_json_text(&c), r.order());
        assert_eq!(text, r.to_json(&c).to_string());
        let id = r.user_data().unwrap().get("id").cloned();
        assert_eq!(r.user_id().map(|u| json!(u)), id.filter(|i| !i.is_null()));
        r.fields_mut(&c.ad_context());
        assert!(!r.is_drawn());
        assert_eq!((r.to_json_text(&c), r.order()), (text, order));
    }
}
