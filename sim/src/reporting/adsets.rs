//! A campaign's ad sets and ad creatives, as named by its attributed-user rows (`ad_set_id`,
//! `ad_creative_id`): only META and GOOGLE campaigns have them, up to three sets of up to four
//! creatives. An ad set is listed when it has a row in the window; its sign-ups are those rows,
//! and its other numbers the campaign's in the same proportion (see [`super::funnel::Funnel::share`]).

use crate::data::AdContext;
use crate::row::Row;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Rows of one ad set or creative: its id, name and how many rows name it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Ad {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) rows: u64,
}

/// An ad set with its creatives, both in id order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AdSet {
    pub(super) ad: Ad,
    pub(super) creatives: Vec<Ad>,
}

/// The ad sets the rows name. A row without an ad set id counts in no set (a plain link, or a
/// sign-up through the SDK), one without a creative id in its set but no creative.
pub(super) fn ad_sets<'r>(rows: impl IntoIterator<Item = &'r Row>, c: &AdContext) -> Vec<AdSet> {
    let mut sets: BTreeMap<String, (Ad, BTreeMap<String, Ad>)> = BTreeMap::new();
    for row in rows {
        let fields = row.ad_fields(c);
        let Some((set_id, set_name)) = named(&fields, "ad_set_id", "ad_set_name") else {
            continue;
        };
        let (set, creatives) = sets
            .entry(set_id.to_string())
            .or_insert_with(|| (ad(set_id, set_name), BTreeMap::new()));
        set.rows += 1;
        if let Some((id, name)) = named(&fields, "ad_creative_id", "ad_creative_name") {
            let creative = creatives.entry(id.to_string());
            creative.or_insert_with(|| ad(id, name)).rows += 1;
        }
    }
    let sets = sets.into_values();
    sets.map(|(ad, creatives)| AdSet {
        ad,
        creatives: creatives.into_values().collect(),
    })
    .collect()
}

fn ad(id: &str, name: &str) -> Ad {
    let (id, name) = (id.to_string(), name.to_string());
    Ad { id, name, rows: 0 }
}

/// The row's non-empty `id_key` with its `name_key` ("" when it has none).
fn named<'r>(
    fields: &'r Map<String, Value>,
    id_key: &str,
    name_key: &str,
) -> Option<(&'r str, &'r str)> {
    let text = |k: &str| fields.get(k).and_then(Value::as_str);
    let id = text(id_key).filter(|id| !id.is_empty())?;
    Some((id, text(name_key).unwrap_or_default()))
}

/// A creative's `type`, from the kind of ad its name says it is.
pub(super) fn creative_type(name: &str) -> &'static str {
    let name = name.to_lowercase();
    if name.starts_with("carousel") {
        "CAROUSEL"
    } else if name.starts_with("video") {
        "VIDEO"
    } else {
        "IMAGE"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn row(uid: u64, fields: Value) -> Row {
        let at = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        Row::new(uid, at, None, fields.as_object().unwrap().clone())
    }

    #[test]
    fn rows_are_counted_under_their_set_and_creative() {
        let named = |set: &str, creative: Value| {
            json!({ "ad_set_id": set, "ad_set_name": "Broad",
                "ad_creative_id": creative, "ad_creative_name": "Video_15s" })
        };
        let rows = [
            row(1, named("2", json!("c1"))),
            row(2, named("1", json!("c1"))),
            row(3, named("1", json!("c2"))),
            row(4, named("1", Value::Null)),
            row(5, named("", json!("c1"))),
            row(6, json!({ "ad_set_id": null })),
        ];
        let counted = |id: &str, name: &str, rows: u64| Ad {
            rows,
            ..ad(id, name)
        };
        let expected = vec![
            AdSet {
                ad: counted("1", "Broad", 3),
                creatives: vec![counted("c1", "Video_15s", 1), counted("c2", "Video_15s", 1)],
            },
            AdSet {
                ad: counted("2", "Broad", 1),
                creatives: vec![counted("c1", "Video_15s", 1)],
            },
        ];
        let at = Utc.timestamp_millis_opt(0).unwrap();
        let c = crate::data::Campaign::new(1, "c".into(), "C".into(), at);
        assert_eq!(ad_sets(&rows, &c.ad_context()), expected);
        assert_eq!(creative_type("Carousel_A"), "CAROUSEL");
        assert_eq!(creative_type("Static_Blue"), "IMAGE");
    }
}
