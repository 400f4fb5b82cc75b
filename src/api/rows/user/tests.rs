use super::*;
use serde_json::json;

pub fn raw(v: Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&v).unwrap()
}

fn sample() -> Value {
    json!({
        "attributed_at": "2026-02-01T09:27:44.061Z",
        "ad_channel": "META",
        "campaign_display_id": "spring-ref-7Q",
        "campaign_name": "Spring referral push",
        "link": null,
        "installed_at": "2026-01-31T18:02:11.000Z",
        "store_click_at": null,
        "meta_ad_id": "",
        "ad_creative_id": "1202",
        "ad_creative_name": "Carousel_B",
        "ad_set_id": "1203",
        "ad_set_name": "Lookalike 2%",
        "publisher_platform": "facebook",
        "platform_position": "feed",
        "user_data": {"id": "u_58213", "name": "Priya", "device_data": {"brand": "google"}}
    })
}

#[test]
fn a_documented_row_needs_no_extra() {
    let row = UserRow::from_wire("spring-ref-7Q", &raw(sample())).unwrap();
    assert_eq!(row.row_key, "u:u_58213");
    assert_eq!(row.extra, None);
    assert_eq!(row.texts[3].as_deref(), Some(""));
    assert_eq!(row.to_wire(), sample());
}

#[test]
fn odd_rows_round_trip_exactly() {
    let mut odd = sample();
    odd["installed_at"] = json!("2026-01-31T18:02:11Z");
    odd["store_click_at"] = json!("");
    odd["ad_set_id"] = json!(1203);
    odd["is_instagram"] = json!(false);
    odd.as_object_mut().unwrap().remove("platform_position");
    let row = UserRow::from_wire("spring-ref-7Q", &raw(odd.clone())).unwrap();
    assert_eq!(row.times[0], parse_time("2026-01-31T18:02:11Z"));
    assert_eq!(row.texts[6].as_deref(), Some("1203"));
    assert_eq!(row.to_wire(), odd);
}

#[test]
fn keys_fall_back_to_device_then_hash() {
    let mut row = sample();
    row["user_data"]["id"] = Value::Null;
    row["user_data"]["device_data"]["idfv"] = json!("ABC");
    assert_eq!(
        UserRow::from_wire("c", &raw(row.clone())).unwrap().row_key,
        "d:idfv=ABC"
    );
    row["user_data"]["device_data"] = json!({});
    let hashed = UserRow::from_wire("c", &raw(row.clone())).unwrap();
    assert!(hashed.row_key.starts_with("h:"));
    // A rename does not change the key.
    row["campaign_name"] = json!("Renamed");
    assert_eq!(
        UserRow::from_wire("c", &raw(row)).unwrap().row_key,
        hashed.row_key
    );
}

#[test]
fn rows_without_a_time_are_rejected() {
    let mut row = sample();
    row["attributed_at"] = json!("yesterday");
    assert!(UserRow::from_wire("c", &raw(row))
        .unwrap_err()
        .reason
        .contains("attributed_at"));
    assert!(UserRow::from_wire("c", &raw(json!([1]))).is_err());
}

#[test]
fn rows_holding_a_nul_are_set_aside_as_received() {
    let mut row = sample();
    row["user_data"]["name"] = json!("Ada\u{0}Lovelace");
    let item = raw(row);
    let rejected = UserRow::from_wire("c", &item).unwrap_err();
    assert!(rejected.reason.contains("NUL"), "{}", rejected.reason);
    assert_eq!(rejected.raw, item.get());
    assert!(UserRow::from_wire("c", &raw(sample())).is_ok());
}

#[test]
fn rows_holding_lone_surrogates_or_bad_bytes_are_set_aside_as_received() {
    let text = sample().to_string().replace("Priya", "Zo\\ud83d");
    let item = RawValue::from_string(text.clone()).unwrap();
    let rejected = UserRow::from_wire("c", &item).unwrap_err();
    assert!(rejected.reason.contains("surrogate"), "{}", rejected.reason);
    assert_eq!(rejected.raw, text);
    // A byte that was not UTF-8, escaped by the page, even where it pairs.
    let text = sample().to_string().replace("Priya", "\\ud83d\\udcff");
    let item = RawValue::from_string(text).unwrap();
    assert!(UserRow::from_wire("c", &item).is_ok());
    let rejected = UserRow::from_item("c", &item, true).unwrap_err();
    assert!(rejected.reason.contains("not UTF-8"), "{}", rejected.reason);
}

#[test]
fn keys_over_the_limit_are_set_aside() {
    let mut row = sample();
    row["user_data"]["id"] = json!("u".repeat(storable::MAX_KEY_BYTES));
    assert!(UserRow::from_wire("c", &raw(row.clone())).is_ok());
    row["user_data"]["id"] = json!("u".repeat(storable::MAX_KEY_BYTES + 1));
    let rejected = UserRow::from_wire("c", &raw(row.clone())).unwrap_err();
    assert!(
        rejected.reason.contains("user_data.id"),
        "{}",
        rejected.reason
    );
    row["user_data"]["id"] = Value::Null;
    row["user_data"]["device_data"]["idfv"] = json!("i".repeat(3000));
    let rejected = UserRow::from_wire("c", &raw(row)).unwrap_err();
    assert!(
        rejected.reason.contains("device_data.idfv"),
        "{}",
        rejected.reason
    );
}

#[test]
fn of_keys_received_twice_the_last_counts() {
    let text = sample()
        .to_string()
        .replace(r#""id":"u_58213""#, r#""id":"first","id":"last""#)
        .replace(r#""brand":"google""#, r#""idfv":"a","idfv":"b""#);
    let row = UserRow::from_wire("c", &RawValue::from_string(text).unwrap()).unwrap();
    assert_eq!(row.user_id.as_deref(), Some("last"));
    // device_data twice, and idfv twice in the last.
    let text = sample().to_string().replace(
        r#""id":"u_58213""#,
        r#""id":null,"device_data":{"idfv":"a","idfv":"b"}"#,
    );
    assert!(text.contains(r#""device_data":{"brand":"google"}"#));
    let row = UserRow::from_wire("c", &RawValue::from_string(text).unwrap()).unwrap();
    assert_eq!(row.row_key, "d:idfv=b");
}

mod properties {
    use super::*;
    use crate::testing::{any_json, object_with, timestamp};
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "attributed_at",
        "campaign_display_id",
        "ad_channel",
        "campaign_name",
        "link",
        "installed_at",
        "store_click_at",
        "meta_ad_id",
        "ad_creative_id",
        "ad_creative_name",
        "ad_set_id",
        "ad_set_name",
        "publisher_platform",
        "platform_position",
        "user_data",
    ];

    proptest! {
        #[test]
        fn any_json_is_stored_exactly_or_kept_as_received(value in any_json()) {
            let item = raw(value.clone());
            match UserRow::from_wire("c", &item) {
                Ok(row) => prop_assert_eq!(row.to_wire(), value),
                Err(rejected) => {
                    prop_assert_eq!(rejected.raw.as_str(), item.get());
                    prop_assert!(!rejected.reason.is_empty());
                }
            }
        }

        /// Whatever a row holds, what we store rebuilds it exactly.
        #[test]
        fn every_readable_row_round_trips(mut row in object_with(KEYS), at in timestamp(), keep_time in any::<bool>()) {
            if keep_time {
                row["attributed_at"] = Value::String(at);
            }
            if let Ok(stored) = UserRow::from_wire("c", &raw(row.clone())) {
                prop_assert_eq!(stored.to_wire(), row);
            }
        }
    }
}
