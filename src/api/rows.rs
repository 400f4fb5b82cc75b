//! An attributed-user row as received, split into what we store: typed columns, `user_data` as
//! received, and `extra` for everything the columns cannot hold exactly. `to_wire` rebuilds the
//! received JSON from the stored parts, which is how the tests prove nothing is lost. A row
//! whose text Postgres cannot store is set aside whole ([`storable`]).

pub mod storable;

pub use crate::model::user::{Rejected, UserRow, TEXT_FIELDS, TIME_FIELDS};

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::models::Key;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

const ABSENT: &str = "__absent";

/// The API's own timestamp form: UTC, milliseconds, `Z`.
pub fn wire_time(t: DateTime<Utc>) -> String {
    match WireTime::of(t) {
        Some(text) => text.as_str().to_owned(),
        None => chrono_wire_time(t),
    }
}

/// The definition of the wire form; chrono signs years outside 0..=9999.
fn chrono_wire_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Whether `text` is exactly `t` in the wire form.
fn is_wire_time(text: &str, t: DateTime<Utc>) -> bool {
    match WireTime::of(t) {
        Some(wire) => text == wire.as_str(),
        None => text == chrono_wire_time(t),
    }
}

/// [`wire_time`]'s text on the stack, for the years chrono prints as four plain digits.
struct WireTime([u8; 24]);

impl WireTime {
    fn of(t: DateTime<Utc>) -> Option<WireTime> {
        let t = t.naive_utc();
        let year = u32::try_from(t.year()).ok().filter(|&y| y <= 9999)?;
        let nano = t.nanosecond();
        let mut text = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[5..7], t.month());
        put_digits(&mut text[8..10], t.day());
        put_digits(&mut text[11..13], t.hour());
        put_digits(&mut text[14..16], t.minute());
        // As chrono's `%S` and `%.3f` print them: a leap second is second 60.
        put_digits(&mut text[17..19], t.second() + nano / 1_000_000_000);
        put_digits(&mut text[20..23], nano / 1_000_000 % 1000);
        Some(WireTime(text))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits and separators")
    }
}

/// Writes the last `out.len()` decimal digits of `n`, zero-padded.
fn put_digits(out: &mut [u8], mut n: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Parses an offset-carrying timestamp to the microseconds Postgres keeps, so the key a row
/// is matched on in memory is the key stored; a finer original is kept in `extra`.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    use chrono::SubsecRound;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
}

/// The few fields of `user_data` the sync itself needs; the rest is skipped, not built. Of a
/// key received twice the last counts, as in the `user_data` jsonb Postgres stores.
#[derive(Default)]
struct UserFields<'a> {
    id: Id<'a>,
    device_data: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for UserFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UserFieldsVisitor(PhantomData))
    }
}

struct UserFieldsVisitor<'a>(PhantomData<UserFields<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for UserFieldsVisitor<'a> {
    type Value = UserFields<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UserFields<'a>, A::Error> {
        let mut fields = UserFields::default();
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "id" => fields.id = map.next_value()?,
                "device_data" => fields.device_data = map.next_value()?,
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(fields)
    }
}

/// The device identifiers a key falls back on, in the order of [`DEVICE_KEYS`]; of a key
/// received twice the last counts.
#[derive(Default)]
struct DeviceIds<'a>([Id<'a>; DEVICE_KEYS.len()]);

const DEVICE_KEYS: [&str; 4] = ["install_instance_id", "device_id", "idfv", "android_id"];

impl<'de: 'a, 'a> Deserialize<'de> for DeviceIds<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DeviceIdsVisitor(PhantomData))
    }
}

struct DeviceIdsVisitor<'a>(PhantomData<DeviceIds<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for DeviceIdsVisitor<'a> {
    type Value = DeviceIds<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeviceIds<'a>, A::Error> {
        let mut ids = DeviceIds::default();
        while let Some(Key(key)) = map.next_key()? {
            match DEVICE_KEYS.iter().position(|k| *k == key) {
                Some(i) => ids.0[i] = map.next_value()?,
                None => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(ids)
    }
}

/// An identifier field, read as a `Value` would be but keeping only what a key can use: a
/// string (borrowed unless it has escapes) or a number. Arrays and objects are still read as
/// `Value`s, so a field that would not parse as one still fails its whole struct.
#[derive(Default)]
enum Id<'a> {
    #[default]
    Other,
    Str(Cow<'a, str>),
    Number(Number),
}

impl Id<'_> {
    /// Arrays are never strings or numbers, but an object can read as one: serde_json reads
    /// `{"$serde_json::private::RawValue": "5"}` as the number 5.
    fn from_value(value: Value) -> Self {
        match value {
            Value::String(s) => Id::Str(Cow::Owned(s)),
            Value::Number(n) => Id::Number(n),
            _ => Id::Other,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor(PhantomData))
    }
}

/// `serde_json::Value`'s visitor, case by case.
struct IdVisitor<'a>(PhantomData<Id<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
    type Value = Id<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Id<'a>, E> {
        Ok(Id::Other)
    }

    fn visit_i64<E>(self, n: i64) -> Result<Id<'a>, E> {
        Ok(Id::Number(n.into()))
    }

    fn visit_i128<E: de::Error>(self, n: i128) -> Result<Id<'a>, E> {
        Number::deserialize(de::value::I128Deserializer::new(n)).map(Id::Number)
    }

    fn visit_u64<E>(self, n: u64) -> Result<Id<'a>, E> {
        Ok(Id::Number(n.into()))
    }

    fn visit_u128<E: de::Error>(self, n: u128) -> Result<Id<'a>, E> {
        Number::deserialize(de::value::U128Deserializer::new(n)).map(Id::Number)
    }

    fn visit_f64<E>(self, n: f64) -> Result<Id<'a>, E> {
        Ok(Number::from_f64(n).map_or(Id::Other, Id::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Id<'a>, E> {
        Ok(Id::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Id<'a>, E> {
        Ok(Id::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Id<'a>, E> {
        Ok(Id::Str(Cow::Owned(s)))
    }

    fn visit_none<E>(self) -> Result<Id<'a>, E> {
        Ok(Id::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Id<'a>, D::Error> {
        Id::deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Id<'a>, E> {
        Ok(Id::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Id<'a>, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Id::from_value)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Id<'a>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Id::from_value)
    }
}

/// A small JSON value; the text was already checked to be JSON.
fn small(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// A member's value as [`small`] reads it, without building a `Value` for `null` or for a
/// string without escapes: a `RawValue` holds valid JSON, so the text between the quotes of such
/// a string is exactly the string.
enum Field<'a> {
    Null,
    Str(&'a str),
    Other(Value),
}

impl<'a> Field<'a> {
    fn of(raw: &'a RawValue) -> Field<'a> {
        let text = raw.get();
        if text == "null" {
            return Field::Null;
        }
        if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            if !inner.contains('\\') {
                return Field::Str(inner);
            }
        }
        match small(raw) {
            Value::Null => Field::Null,
            other => Field::Other(other),
        }
    }

    /// `Value::as_str` of the value.
    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Null => None,
            Field::Str(s) => Some(s),
            Field::Other(v) => v.as_str(),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Str(s) => Value::String(s.to_owned()),
            Field::Other(v) => v,
        }
    }
}

/// What a row's typed columns hold, and `extra`: every member the columns cannot hold exactly
/// (a text that was a number, a time not in the wire form, another campaign's id, a member the
/// API does not document) and the documented members that were absent.
fn columns_and_extra<'a>(
    campaign: &str,
    Members { known, unknown }: Members<'a>,
    original_at: Option<Field<'a>>,
    attributed_at: DateTime<Utc>,
) -> Typed {
    let mut extra = Map::new();
    let mut absent = Vec::new();
    let mut take = |slot: usize, key: &str| match known[slot] {
        None => {
            absent.push(Value::String(key.to_owned()));
            None
        }
        Some(raw) => Some(Field::of(raw)),
    };
    // Read above; present, since it parsed.
    if let Some(original) = original_at {
        if !original
            .as_str()
            .is_some_and(|s| is_wire_time(s, attributed_at))
        {
            extra.insert("attributed_at".into(), original.into_value());
        }
    }
    match take(CAMPAIGN, "campaign_display_id") {
        Some(same) if same.as_str() == Some(campaign) => {}
        Some(other) => {
            let other = other.into_value();
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
    let texts = std::array::from_fn(|i| {
        let key = TEXT_FIELDS[i];
        match take(TEXTS + i, key)? {
            Field::Null => None,
            Field::Str(s) => Some(s.to_owned()),
            Field::Other(Value::String(s)) => Some(s),
            Field::Other(other) => {
                let text = other.to_string();
                extra.insert(key.to_owned(), other);
                Some(text)
            }
        }
    });
    let times = std::array::from_fn(|i| {
        let key = TIME_FIELDS[i];
        match take(TIMES + i, key)? {
            Field::Null => None,
            other => {
                let text = other.as_str();
                let parsed = text.and_then(parse_time);
                let exact = parsed.is_some_and(|t| text.is_some_and(|s| is_wire_time(s, t)));
                if !exact {
                    extra.insert(key.to_owned(), other.into_value());
                }
                parsed
            }
        }
    });
    // user_data is kept as text; only whether it was there matters here.
    if known[USER_DATA].is_none() {
        absent.push(Value::String("user_data".into()));
    }
    for (key, value) in unknown {
        extra.insert(key.into_owned(), small(value));
    }
    if !absent.is_empty() {
        extra.insert(ABSENT.into(), Value::Array(absent));
    }
    Typed {
        texts,
        times,
        extra: (!extra.is_empty()).then_some(Value::Object(extra)),
    }
}

/// A row's typed columns, and what they cannot hold exactly.
struct Typed {
    texts: [Option<String>; TEXT_FIELDS.len()],
    times: [Option<DateTime<Utc>>; TIME_FIELDS.len()],
    extra: Option<Value>,
}

/// Slots of the documented members in [`Members::known`].
const ATTRIBUTED_AT: usize = 0;
const CAMPAIGN: usize = 1;
const TEXTS: usize = 2;
const TIMES: usize = TEXTS + TEXT_FIELDS.len();
const USER_DATA: usize = TIMES + TIME_FIELDS.len();
const KNOWN: usize = USER_DATA + 1;

fn known_slot(key: &str) -> Option<usize> {
    match key {
        "attributed_at" => Some(ATTRIBUTED_AT),
        "campaign_display_id" => Some(CAMPAIGN),
        "user_data" => Some(USER_DATA),
        _ => TEXT_FIELDS
            .iter()
            .position(|f| *f == key)
            .map(|i| TEXTS + i)
            .or_else(|| {
                TIME_FIELDS
                    .iter()
                    .position(|f| *f == key)
                    .map(|i| TIMES + i)
            }),
    }
}

/// A row object's members: the documented ones by slot, the others in the order received. A
/// key received twice keeps its last value, as a map would.
struct Members<'a> {
    known: [Option<&'a RawValue>; KNOWN],
    unknown: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Members {
            known: [None; KNOWN],
            unknown: Vec::new(),
        };
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            match known_slot(&key) {
                Some(slot) => members.known[slot] = Some(value),
                None => members.unknown.push((key, value)),
            }
        }
        Ok(members)
    }
}

impl UserRow {
    /// Splits a received row of `campaign`'s listing.
    pub fn from_wire(campaign: &str, raw: &RawValue) -> Result<UserRow, Rejected> {
        UserRow::from_item(campaign, raw, false)
    }

    /// As [`UserRow::from_wire`], for an item of a page whose body was not UTF-8 when
    /// `recoded` (`Page::recoded`). A row whose text Postgres cannot store is set aside whole.
    pub fn from_item(campaign: &str, raw: &RawValue, recoded: bool) -> Result<UserRow, Rejected> {
        let reject = |reason: &str| Rejected {
            reason: reason.to_owned(),
            raw: raw.get().to_owned(),
        };
        let problems = storable::problems(raw.get(), recoded);
        if problems.any() {
            return Err(reject(&problems.to_string()));
        }
        let Ok(members) = serde_json::from_str::<Members>(raw.get()) else {
            return Err(reject("row is not a JSON object"));
        };
        let original_at = members.known[ATTRIBUTED_AT].map(Field::of);
        let attributed_at = original_at
            .as_ref()
            .and_then(Field::as_str)
            .and_then(parse_time);
        let Some(attributed_at) = attributed_at else {
            return Err(reject(
                "attributed_at is missing or not an ISO 8601 timestamp",
            ));
        };
        let user_data_text = members.known[USER_DATA]
            .map(RawValue::get)
            .filter(|t| *t != "null");
        let fields: UserFields = user_data_text
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let user_id = match fields.id {
            Id::Str(s) if !s.trim().is_empty() => Some(s.into_owned()),
            Id::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let row_key = row_key(user_id.as_deref(), fields.device_data, raw);
        let (source, bytes) = key_source(&row_key);
        if bytes > storable::MAX_KEY_BYTES {
            return Err(reject(&storable::long_key_reason(&source, bytes)));
        }

        let Typed {
            texts,
            times,
            extra,
        } = columns_and_extra(campaign, members, original_at, attributed_at);
        Ok(UserRow {
            campaign_display_id: campaign.to_owned(),
            attributed_at,
            row_key,
            user_id,
            texts,
            times,
            user_data: user_data_text.map(str::to_owned),
            extra,
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
        return ["u:", id].concat();
    }
    let ids: DeviceIds = device_data
        .and_then(|d| serde_json::from_str(d.get()).ok())
        .unwrap_or_default();
    let device = DEVICE_KEYS
        .iter()
        .zip(&ids.0)
        .find_map(|(key, value)| match value {
            Id::Str(s) if !s.trim().is_empty() => Some(["d:", key, "=", s].concat()),
            _ => None,
        });
    if let Some(device) = device {
        return device;
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

/// The field a row key was made of, and the bytes of its value.
fn key_source(row_key: &str) -> (String, usize) {
    match row_key.split_once(':') {
        Some(("u", id)) => ("user_data.id".into(), id.len()),
        Some(("d", device)) => match device.split_once('=') {
            Some((key, id)) => (format!("user_data.device_data.{key}"), id.len()),
            None => ("a device id".into(), device.len()),
        },
        _ => ("the row key".into(), row_key.len()),
    }
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

    #[test]
    fn known_slots_follow_the_field_lists() {
        assert_eq!(known_slot("attributed_at"), Some(ATTRIBUTED_AT));
        assert_eq!(known_slot("campaign_display_id"), Some(CAMPAIGN));
        for (i, key) in TEXT_FIELDS.iter().enumerate() {
            assert_eq!(known_slot(key), Some(TEXTS + i));
        }
        for (i, key) in TIME_FIELDS.iter().enumerate() {
            assert_eq!(known_slot(key), Some(TIMES + i));
        }
        assert_eq!(known_slot("user_data"), Some(USER_DATA));
        assert_eq!(known_slot("is_instagram"), None);
    }

    #[test]
    fn wire_time_edges() {
        let at = |text: &str| parse_time(text).unwrap();
        assert_eq!(
            wire_time(at("2026-06-30T23:59:60.5Z")),
            "2026-06-30T23:59:60.500Z"
        );
        assert_eq!(
            wire_time(at("0012-01-02T03:04:05.006Z")),
            "0012-01-02T03:04:05.006Z"
        );
        let far = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            wire_time(far),
            far.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        );
        assert!(wire_time(DateTime::<Utc>::MIN_UTC).starts_with('-'));
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

        /// Seconds since the epoch anywhere chrono can go, and often near years 0 and 10000.
        fn epoch_seconds() -> impl Strategy<Value = i64> {
            const YEAR_0: i64 = -62_167_219_200;
            const YEAR_10000: i64 = 253_402_300_800;
            const SPAN: i64 = 400 * 86_400;
            prop_oneof![
                DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
                YEAR_0 - SPAN..YEAR_0 + SPAN,
                YEAR_10000 - SPAN..YEAR_10000 + SPAN,
                0i64..4_000_000_000,
            ]
        }

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

            /// The wire form is chrono's `%Y-%m-%dT%H:%M:%S%.3fZ`, leap seconds included.
            #[test]
            fn wire_time_is_chronos_format(secs in epoch_seconds(), nanos in 0u32..1_000_000_000, leap in any::<bool>()) {
                // chrono keeps a leap second as second 59 with more than 10^9 nanoseconds.
                let (secs, nanos) = if leap { (secs - secs.rem_euclid(60) + 59, nanos + 1_000_000_000) } else { (secs, nanos) };
                if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                    let expected = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                    prop_assert_eq!(wire_time(t), expected.as_str());
                    prop_assert!(is_wire_time(&expected, t));
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
}
