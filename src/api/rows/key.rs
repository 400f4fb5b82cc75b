//! A row's natural key: the user id of `user_data`, else a device identifier, else a hash of
//! the row. Only the few identifier fields are read; the rest of `user_data` is skipped.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::api::models::Key;
use crate::api::rows::members::small;
use crate::model::storable;

/// A row's user id and natural key.
pub(super) struct Identity {
    pub(super) user_id: Option<String>,
    pub(super) row_key: String,
}

/// The user id and key of `row`, whose `user_data` has the text given, or why the key cannot be
/// stored.
pub(super) fn identify(user_data: Option<&str>, row: &RawValue) -> Result<Identity, String> {
    let fields: UserFields = user_data
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let user_id = match fields.id {
        Id::Str(s) if !s.trim().is_empty() => Some(s.into_owned()),
        Id::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let row_key = row_key(user_id.as_deref(), fields.device_data, row);
    let (source, bytes) = key_source(&row_key);
    if bytes > storable::MAX_KEY_BYTES {
        return Err(storable::long_key_reason(&source, bytes));
    }
    Ok(Identity { user_id, row_key })
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
    format!("h:{}", content_digest(row))
}

/// The hash of a row's content, hex: the key of a row with no user or device id.
pub(super) fn content_digest(row: &RawValue) -> String {
    // campaign_name follows renames, so it is left out of the hash. serde_json sorts object
    // keys, which makes the text canonical.
    let mut stable = small(row);
    if let Value::Object(obj) = &mut stable {
        obj.remove("campaign_name");
    }
    hex::encode(Sha256::digest(stable.to_string().as_bytes()))
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
