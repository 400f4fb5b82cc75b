use super::*;
use crate::testing::{any_json, object_with};
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "display_id",
    "name",
    "created_at",
    "update_at",
    "google",
    "meta",
    "meta_campaign_id",
    "meta_web_to_app",
    "active",
    "default_link",
    "attributed_users",
    "link",
    "shareable_link",
    "domain",
    "store_listings",
];

#[test]
fn drifted_counters_and_empty_ids_are_read() {
    let c = item(serde_json::json!({
        "display_id": "x1", "attributed_users": "12", "meta_campaign_id": "", "active": "false"
    }));
    assert_eq!(
        (c.attributed_users, c.meta_campaign_id, c.active),
        (Some(12), None, Some(false))
    );
    let empty = item(serde_json::json!({"display_id": ""}));
    assert_eq!(empty.display_id, UNSTORABLE_ID);
    assert!(empty.unstorable.unwrap().contains("no display_id"));
}

#[test]
fn a_campaign_postgres_cannot_store_is_set_aside_as_received() {
    let cases = [
        (
            r#"{"display_id":"x2","name":"Spring\u0000sale"}"#,
            "x2",
            "NUL",
        ),
        (
            r#"{"display_id":"x3","name":"Zo\ud83d"}"#,
            "x3",
            "surrogate",
        ),
        (
            r#"{"display_id":"x\u0000","name":"A"}"#,
            UNSTORABLE_ID,
            "NUL",
        ),
        (r#"{"display_id":5}"#, UNSTORABLE_ID, "no display_id"),
        (r#"{"display_id":"x4","n":1e400}"#, "x4", "cannot be read"),
        (r#"[1]"#, UNSTORABLE_ID, "not a JSON object"),
    ];
    for (text, id, reason) in cases {
        let c = CampaignRow::from_wire(&RawValue::from_string(text.into()).unwrap(), false);
        assert_eq!(c.display_id, id, "{text}");
        let rejected = c.rejected().unwrap();
        assert!(
            rejected.reason.contains(reason),
            "{text}: {}",
            rejected.reason
        );
        assert_eq!(rejected.raw, text);
    }
    let long = serde_json::json!({"display_id": "x".repeat(MAX_KEY_BYTES + 1)});
    assert_eq!(item(long).display_id, UNSTORABLE_ID);
    let listing = serde_json::json!({"display_id": "x5", "store_listings": [
        {"store_listing_id": "s".repeat(MAX_KEY_BYTES + 1)}
    ]});
    assert_eq!(item(listing).display_id, "x5");
    // Of two display_ids, the last.
    let twice = r#"{"display_id":"a","display_id":"b"}"#;
    let c = CampaignRow::from_wire(&RawValue::from_string(twice.into()).unwrap(), false);
    assert_eq!((c.display_id.as_str(), c.is_storable()), ("b", true));
}

fn item(value: Value) -> CampaignRow {
    CampaignRow::from_wire(&serde_json::value::to_raw_value(&value).unwrap(), false)
}

proptest! {
    #[test]
    fn any_item_is_kept_as_received(value in any_json(), item in object_with(KEYS)) {
        let _ = super::tests::item(value);
        let c = super::tests::item(item.clone());
        // As received, whether stored or set aside.
        prop_assert_eq!(serde_json::from_str::<Value>(c.raw.get()).unwrap(), item);
        prop_assert_eq!(c.is_storable(), c.rejected().is_none());
    }
}
