//! The wire format: the response envelope and its pagination, read leniently.
//!
//! Items stay raw JSON text so that no key the server sends is lost and the bulk of a row
//! (`user_data` with its device data) is never built into a tree; typing them is a separate step
//! (`api::rows`).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::api::budget::Hold;
use crate::api::ApiError;

/// One page of a list endpoint.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Box<RawValue>>,
    /// All matches over all pages (`data.pagination.total`).
    pub total: u64,
    /// Page count (`data.pagination.pages`).
    pub pages: u64,
    /// What the page draws on the run's memory budget, given back when it is dropped.
    pub hold: Hold,
    /// The body was not UTF-8: each byte that was not became the escape `\udcXX` (see
    /// [`escape_bad_bytes`]), so the items that held one read as holding a lone surrogate.
    pub recoded: bool,
}

impl Page {
    /// Reads `{ "data": { <list_key>: [...], "pagination": { "total", "pages" } } }` in one pass
    /// over the body; of repeated keys the last counts.
    ///
    /// `total_campaigns` / `total_users` count the rows on this page only, so they are ignored.
    /// A list longer than `max_items` (the `limit` asked for) is refused as soon as it is seen,
    /// before the rest of it is held.
    ///
    /// A body that fails to parse and is not UTF-8 is read again with its bad bytes escaped:
    /// the items beside one that held them are read as usual.
    pub fn parse(body: &[u8], list_key: &str, max_items: usize) -> Result<Page, ApiError> {
        let first = Page::parse_text(body, list_key, max_items);
        if first.is_ok() || std::str::from_utf8(body).is_ok() {
            return first;
        }
        let Some(escaped) = escape_bad_bytes(body) else {
            return first;
        };
        Page::parse_text(escaped.as_bytes(), list_key, max_items)
            .map(|page| Page {
                recoded: true,
                ..page
            })
            .or(first)
    }

    fn parse_text(body: &[u8], list_key: &str, max_items: usize) -> Result<Page, ApiError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let overflow = Cell::new(false);
        let data = Envelope {
            list_key,
            max_items,
            overflow: &overflow,
        }
        .deserialize(&mut de)
        .and_then(|data| de.end().map(|()| data));
        if overflow.get() {
            return Err(ApiError::Protocol(format!(
                "a page held more than the {max_items} rows asked for"
            )));
        }
        let data = data.map_err(|e| ApiError::Decode(unreadable(body, &e)))?;
        let Some(data) = data else {
            return Err(ApiError::Decode(format!(
                "no 'data' object (top-level keys: {})",
                top_level_keys(body)
            )));
        };
        let items = data
            .items
            .ok_or_else(|| ApiError::Decode(format!("'{list_key}' is not an array")))?;
        let number = |key: &str| data.pagination.get(key).and_then(as_u64);
        let total = number("total").unwrap_or(items.len() as u64);
        let pages = number("pages").unwrap_or(if total == 0 { 0 } else { 1 });
        Ok(Page {
            items,
            total,
            pages,
            hold: Hold::default(),
            recoded: false,
        })
    }
}

/// The body with each byte that is not UTF-8 written as the JSON escape `\udcXX` of byte 0xXX
/// (PEP 383's "surrogateescape": always `\udc80`..`\udcff`, as such a byte is 0x80 or more).
/// In a string it reads as a lone surrogate, which no text Postgres stores holds, and the
/// original bytes can be read back from it. None when a bad byte follows the backslash of an
/// escape: the body is no JSON, and escaping the byte would make it one.
pub fn escape_bad_bytes(body: &[u8]) -> Option<String> {
    use std::fmt::Write;
    let mut out = String::with_capacity(body.len() + 64);
    for chunk in body.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let backslashes = out.bytes().rev().take_while(|&b| b == b'\\').count();
            if backslashes % 2 == 1 {
                return None;
            }
            let _ = write!(out, "\\u{:04x}", 0xdc00 | u16::from(*byte));
        }
    }
    Some(out)
}

/// An object key, borrowed unless it has escapes.
pub(crate) struct Key<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s)))
    }
}

/// Visitor methods answering None for a scalar, where only an object or array is of use.
macro_rules! none_for_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

/// What `data` holds: the list (None when it is not an array) and the pagination.
struct Data {
    items: Option<Vec<Box<RawValue>>>,
    pagination: Value,
}

/// The envelope, an object; its `data` when that is an object.
struct Envelope<'k> {
    list_key: &'k str,
    max_items: usize,
    /// Set when the list is longer than `max_items`.
    overflow: &'k Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Envelope<'_> {
    type Value = Option<Data>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_> {
    type Value = Option<Data>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "data" {
                data = map.next_value_seed(DataSeed {
                    list_key: self.list_key,
                    list: ListSeed {
                        max_items: self.max_items,
                        overflow: self.overflow,
                    },
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(data)
    }
}

/// `data`: None unless it is an object.
struct DataSeed<'k> {
    list_key: &'k str,
    list: ListSeed<'k>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Option<Data>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Option<Data>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = Data {
            items: Some(Vec::new()),
            pagination: Value::Null,
        };
        while let Some(Key(key)) = map.next_key()? {
            if key == self.list_key {
                data.items = map.next_value_seed(self.list)?;
            } else if key == "pagination" {
                data.pagination = map.next_value()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(data))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    none_for_scalars!();
}

/// The list: null is empty, an array its items as received, anything else None.
#[derive(Clone, Copy)]
struct ListSeed<'k> {
    max_items: usize,
    overflow: &'k Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Option<Vec<Box<RawValue>>>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Option<Vec<Box<RawValue>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max_items));
        while let Some(item) = seq.next_element()? {
            if items.len() == self.max_items {
                self.overflow.set(true);
                return Err(serde::de::Error::custom("more items than asked for"));
            }
            items.push(item);
        }
        Ok(Some(items))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    none_for_scalars!();
}

/// A count that may arrive as a number or as a numeric string.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Why a body is not a page, without its contents when it is JSON: a page of users holds
/// personal data. A body of another kind (a proxy's HTML page) is shown in part.
fn unreadable(body: &[u8], e: &serde_json::Error) -> String {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "cut short",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "JSON of another shape",
            serde_json::error::Category::Eof => "cut short",
        };
        format!(
            "not a page: {kind} at line {} column {} of {} bytes",
            e.line(),
            e.column(),
            body.len()
        )
    } else {
        format!("not a JSON object: {}", preview(body))
    }
}

/// The keys of a JSON object, never its values.
fn top_level_keys(body: &[u8]) -> String {
    let keys: Vec<String> =
        serde_json::from_slice::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(body)
            .map(|m| m.into_keys().take(10).collect())
            .unwrap_or_default();
    crate::output::secrets::clean(&keys.join(", "), 200)
}

/// The start of a body, for error messages: masked before it is cut, so a key across the cut
/// leaves no prefix behind.
pub fn preview(body: &[u8]) -> String {
    const SHOWN: usize = 120;
    let head = String::from_utf8_lossy(&body[..body.len().min(SHOWN * 8)]);
    let text = head.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::output::secrets::clean(&text, SHOWN)
}

#[cfg(test)]
mod tests;
