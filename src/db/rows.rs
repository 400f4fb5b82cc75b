//! An attributed-user row as received, split into what we store: typed columns, `user_data` as
//! received, and `extra` for everything the columns cannot hold exactly. `to_wire` rebuilds the
//! received JSON from the stored parts, which is how the tests prove nothing is lost.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Documented text fields of a row, in column order.
pub const TEXT_FIELDS: [&str; 10] = [
    "ad_channel",
    "campaign_name",
    "link",
    "meta_ad_id",
    "ad_creative_id",
    "ad_creative_name",
    "ad_set_id",
    "ad_set_name",
    "publisher_platform",
    "platform_position",
];

/// Documented timestamp fields other than `attributed_at`, in column order.
pub const TIME_FIELDS: [&str; 2] = ["installed_at", "store_click_at"];

const ABSENT: &str = "__absent";

#[derive(Clone, Debug, PartialEq, Default)]
pub struct UserRow {
    pub campaign_display_id: String,
    pub attributed_at: DateTime<Utc>,
    pub row_key: String,
    pub user_id: Option<String>,
    pub texts: [Option<String>; 10],
    pub times: [Option<DateTime<Utc>>; 2],
    /// `user_data` as the JSON text received; it goes to Postgres without being rebuilt.
    pub user_data: Option<String>,
    pub extra: Option<Value>,
}

/// A row we could not key, with the reason.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub reason: String,
    pub raw: Value,
}

/// The API's own timestamp form: UTC, milliseconds, `Z`.
pub fn wire_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The few fields of `user_data` the sync itself needs; the rest is skipped, not built.
#[derive(Default, Deserialize)]
struct UserFields<'a> {
    #[serde(default)]
    id: Value,
    #[serde(default, borrow)]
    device_data: Option<&'a RawValue>,
}

#[derive(Default, Deserialize)]
struct DeviceIds {
    #[serde(default)]
    install_instance_id: Value,
    #[serde(default)]
    device_id: Value,
    #[serde(default)]
    idfv: Value,
    #[serde(default)]
    android_id: Value,
}

/// A small JSON value; the text was already checked to be JSON.
fn small(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

impl UserRow {
    /// Splits a received row of `campaign`'s listing.
    pub fn from_wire(campaign: &str, raw: &RawValue) -> Result<UserRow, Rejected> {
        let reject = |reason: &str| Rejected {
            reason: reason.to_owned(),
            raw: small(raw),
        };
        let Ok(mut obj) = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) else {
            return Err(reject("row is not a JSON object"));
        };
        let attributed_at = match obj.get("attributed_at").map(|r| small(r)) {
            Some(Value::String(s)) => parse_time(&s),
            _ => None,
        };
        let Some(attributed_at) = attributed_at else {
            return Err(reject(
                "attributed_at is missing or not an ISO 8601 timestamp",
            ));
        };
        let user_data = match obj.get("user_data").map(|r| r.get()) {
            None | Some("null") => None,
            Some(text) => Some(text.to_owned()),
        };
        let fields: UserFields = user_data
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let user_id = match &fields.id {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let row_key = row_key(user_id.as_deref(), fields.device_data, raw);

        let mut extra = Map::new();
        let mut absent = Vec::new();
        let mut take = |key: &str| match obj.remove(key) {
            None => {
                absent.push(Value::String(key.to_owned()));
                None
            }
            Some(raw) => Some(small(raw)),
        };
        if let Some(original) = take("attributed_at") {
            if original.as_str() != Some(wire_time(attributed_at).as_str()) {
                extra.insert("attributed_at".into(), original);
            }
        }
        match take("campaign_display_id") {
            Some(Value::String(s)) if s == campaign => {}
            Some(other) => {
                if other
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(campaign))
                {
                    tracing::warn!(campaign, received = %other, "campaign id differs only in letter case");
                }
                extra.insert("campaign_display_id".into(), other);
            }
            None => {}
        }
        let texts = TEXT_FIELDS.map(|key| match take(key)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => {
                let text = other.to_string();
                extra.insert(key.to_owned(), other);
                Some(text)
            }
        });
        let times = TIME_FIELDS.map(|key| match take(key)? {
            Value::Null => None,
            other => {
                let parsed = other.as_str().and_then(parse_time);
                let exact = parsed.is_some() && parsed.map(wire_time).as_deref() == other.as_str();
                if !exact {
                    extra.insert(key.to_owned(), other);
                }
                parsed
            }
        });
        // user_data is kept as text above; only whether it was there matters here.
        if !obj.contains_key("user_data") {
            absent.push(Value::String("user_data".into()));
        }
        obj.remove("user_data");
        extra.extend(obj.into_iter().map(|(k, v)| (k, small(v))));
        if !absent.is_empty() {
            extra.insert(ABSENT.into(), Value::Array(absent));
        }
        Ok(UserRow {
            campaign_display_id: campaign.to_owned(),
            attributed_at,
            row_key,
            user_id,
            texts,
            times,
            user_data,
            extra: (!extra.is_empty()).then_some(Value::Object(extra)),
        })
    }

    /// The row as the API sent it.
    pub fn to_wire(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("attributed_at".into(), wire_time(self.attributed_at).into());
        obj.insert(
            "campaign_display_id".into(),
            self.campaign_display_id.clone().into(),
        );
        for (key, value) in TEXT_FIELDS.iter().zip(&self.texts) {
            obj.insert(
                (*key).into(),
                value.clone().map_or(Value::Null, Value::String),
            );
        }
        for (key, value) in TIME_FIELDS.iter().zip(&self.times) {
            obj.insert(
                (*key).into(),
                value.map_or(Value::Null, |t| wire_time(t).into()),
            );
        }
        let user_data = self
            .user_data
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok());
        obj.insert("user_data".into(), user_data.unwrap_or(Value::Null));
        if let Some(Value::Object(extra)) = &self.extra {
            for (key, value) in extra {
                if key != ABSENT {
                    obj.insert(key.clone(), value.clone());
                }
            }
            if let Some(Value::Array(absent)) = extra.get(ABSENT) {
                for key in absent.iter().filter_map(Value::as_str) {
                    obj.remove(key);
                }
            }
        }
        Value::Object(obj)
    }
}

/// The natural key's last part: the user id, else a device identifier, else a hash of the row.
fn row_key(user_id: Option<&str>, device_data: Option<&RawValue>, row: &RawValue) -> String {
    if let Some(id) = user_id {
        return format!("u:{id}");
    }
    let ids: DeviceIds = device_data
        .and_then(|d| serde_json::from_str(d.get()).ok())
        .unwrap_or_default();
    let device = [
        ("install_instance_id", &ids.install_instance_id),
        ("device_id", &ids.device_id),
        ("idfv", &ids.idfv),
        ("android_id", &ids.android_id),
    ]
    .into_iter()
    .find_map(|(key, value)| match value {
        Value::String(s) if !s.trim().is_empty() => Some(format!("{key}={s}")),
        _ => None,
    });
    if let Some(device) = device {
        return format!("d:{device}");
    }
    // campaign_name follows renames, so it is left out of the hash. serde_json sorts object
    // keys, which makes the text canonical.
    let mut stable = small(row);
    if let Value::Object(obj) = &mut stable {
        obj.remove("campaign_name");
    }
    let digest = Sha256::digest(stable.to_string().as_bytes());
    format!("h:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
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
            fn any_json_never_panics(value in any_json()) {
                let _ = UserRow::from_wire("c", &raw(value));
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
}
