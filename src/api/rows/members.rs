//! A row object's members, read without building a tree: the documented ones by slot, each
//! value read only as far as the column it goes to needs.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::api::models::Key;
use crate::model::user::{TEXT_FIELDS, TIME_FIELDS};

/// Slots of the documented members in [`Members::known`].
pub(super) const ATTRIBUTED_AT: usize = 0;
pub(super) const CAMPAIGN: usize = 1;
pub(super) const TEXTS: usize = 2;
pub(super) const TIMES: usize = TEXTS + TEXT_FIELDS.len();
pub(super) const USER_DATA: usize = TIMES + TIME_FIELDS.len();
pub(super) const KNOWN: usize = USER_DATA + 1;

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
pub(super) struct Members<'a> {
    pub(super) known: [Option<&'a RawValue>; KNOWN],
    pub(super) unknown: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Members<'a> {
    /// `attributed_at` as received, when present.
    pub(super) fn attributed_at(&self) -> Option<Field<'a>> {
        self.known[ATTRIBUTED_AT].map(Field::of)
    }

    /// `user_data`'s text, unless it is absent or null.
    pub(super) fn user_data(&self) -> Option<&'a str> {
        self.known[USER_DATA]
            .map(RawValue::get)
            .filter(|t| *t != "null")
    }
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

/// A small JSON value; the text was already checked to be JSON.
pub(super) fn small(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// A member's value as [`small`] reads it, without building a `Value` for `null` or for a
/// string without escapes: a `RawValue` holds valid JSON, so the text between the quotes of such
/// a string is exactly the string.
pub(super) enum Field<'a> {
    Null,
    Str(&'a str),
    Other(Value),
}

impl<'a> Field<'a> {
    pub(super) fn of(raw: &'a RawValue) -> Field<'a> {
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
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Field::Null => None,
            Field::Str(s) => Some(s),
            Field::Other(v) => v.as_str(),
        }
    }

    pub(super) fn into_value(self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Str(s) => Value::String(s.to_owned()),
            Field::Other(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
