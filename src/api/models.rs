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

use crate::api::ApiError;
use crate::memory::Hold;

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
        let data = data
            .map_err(|e| ApiError::Decode(format!("not a JSON object ({e}): {}", preview(body))))?;
        let Some(data) = data else {
            return Err(ApiError::Decode(format!(
                "no 'data' object in {}",
                preview(body)
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

/// The start of a body, for error messages: masked before it is cut, so a key across the cut
/// leaves no prefix behind.
pub fn preview(body: &[u8]) -> String {
    const SHOWN: usize = 120;
    let head = String::from_utf8_lossy(&body[..body.len().min(SHOWN * 8)]);
    let text = head.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::secrets::clean(&text, SHOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pagination_not_page_counts() {
        let body = br#"{"msg":"ok","status":200,"data":{"total_users":1,"users":[{"a":1}],
            "pagination":{"total":1874,"pages":2,"page":1,"limit":1000}}}"#;
        let page = Page::parse(body, "users", 1000).unwrap();
        assert_eq!((page.items.len(), page.total, page.pages), (1, 1874, 2));
        assert_eq!(page.items[0].get(), r#"{"a":1}"#);
    }

    #[test]
    fn html_error_page_is_a_decode_error() {
        let err =
            Page::parse(b"<html><body>502 Bad Gateway</body></html>", "users", 1000).unwrap_err();
        assert!(matches!(err, ApiError::Decode(_)));
        assert!(err.to_string().contains("502 Bad Gateway"));
    }

    #[test]
    fn a_page_longer_than_asked_for_is_refused() {
        let body = br#"{"data":{"users":[1,2,3],"pagination":{"total":3,"pages":1}}}"#;
        assert_eq!(Page::parse(body, "users", 3).unwrap().items.len(), 3);
        let err = Page::parse(body, "users", 2).unwrap_err();
        assert!(matches!(err, ApiError::Protocol(_)), "{err}");
    }

    #[test]
    fn numbers_as_strings_are_read() {
        let body = br#"{"data":{"campaigns":[],"pagination":{"total":"0","pages":"0"}}}"#;
        let page = Page::parse(body, "campaigns", 1000).unwrap();
        assert_eq!((page.total, page.pages), (0, 0));
    }

    /// The reading `Page::parse` replaced: envelope, `data` and list each parsed on their own.
    fn three_passes(body: &[u8], list_key: &str) -> Result<Page, ApiError> {
        use std::collections::BTreeMap;
        let envelope: BTreeMap<String, &RawValue> = serde_json::from_slice(body)
            .map_err(|e| ApiError::Decode(format!("not a JSON object ({e}): {}", preview(body))))?;
        let data: BTreeMap<String, &RawValue> = envelope
            .get("data")
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .ok_or_else(|| ApiError::Decode(format!("no 'data' object in {}", preview(body))))?;
        let items = match data.get(list_key).map(|raw| raw.get()) {
            None | Some("null") => Vec::new(),
            Some(raw) => serde_json::from_str::<Vec<Box<RawValue>>>(raw)
                .map_err(|_| ApiError::Decode(format!("'{list_key}' is not an array")))?,
        };
        let pagination: Value = data
            .get("pagination")
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let number = |key: &str| pagination.get(key).and_then(as_u64);
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

    #[test]
    fn bad_bytes_become_escapes_and_only_their_items_hold_them() {
        let body = b"{\"msg\":\"\xff\",\"data\":{\"users\":[{\"n\":\"Zo\xe9\"},{\"n\":\"ok\"}]}}";
        let page = Page::parse(body, "users", 1000).unwrap();
        assert!(page.recoded);
        assert_eq!(page.items[0].get(), r#"{"n":"Zo\udce9"}"#);
        assert_eq!(page.items[1].get(), r#"{"n":"ok"}"#);
        // A cut multi-byte character: each of its bytes.
        assert_eq!(
            escape_bad_bytes("\"\u{e9}\u{1F600}\"".as_bytes()[..6].as_ref()).unwrap(),
            "\"\u{e9}\\udcf0\\udc9f\\udc98"
        );
        // Valid bodies take the usual path.
        let page = Page::parse(br#"{"data":{"users":[{"n":"\ud83d"}]}}"#, "users", 1000).unwrap();
        assert!(!page.recoded);
    }

    #[test]
    fn bad_bytes_never_make_json_of_what_is_not() {
        // An escape cut by a bad byte, and bad bytes outside strings.
        for body in [
            &b"{\"data\":{\"users\":[\"a\\\xff\"]}}"[..],
            b"{\"data\":\xff}",
        ] {
            assert!(matches!(
                Page::parse(body, "users", 1000),
                Err(ApiError::Decode(_))
            ));
        }
        assert_eq!(
            escape_bad_bytes(b"\\\\\xff").as_deref(),
            Some("\\\\\\udcff")
        );
        assert_eq!(escape_bad_bytes(b"\\\xff"), None);
    }

    mod properties {
        use super::*;
        use crate::testing::any_json;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_give_whole_items_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(page) = Page::parse(&bytes, "users", 3) {
                    prop_assert!(page.items.len() <= 3);
                    for item in &page.items {
                        prop_assert!(serde_json::from_str::<Value>(item.get()).is_ok());
                    }
                }
            }

            #[test]
            fn reads_as_three_passes_would(value in any_json(), key in prop_oneof![Just("users"), Just("campaigns")]) {
                let bodies = [
                    value.to_string(),
                    serde_json::json!({"data": {key: [value.clone()], "pagination": value}}).to_string(),
                    serde_json::json!({"data": {key: value.clone(), "pagination": {"total": 3}}}).to_string(),
                    serde_json::json!({"data": value.clone()}).to_string(),
                    format!(r#"{{"data":{{"{key}":[1]}},"data":{{"{key}":[2,3]}}}}"#),
                ];
                for body in bodies {
                    let new = Page::parse(body.as_bytes(), key, usize::MAX);
                    let old = three_passes(body.as_bytes(), key);
                    match (new, old) {
                        (Ok(a), Ok(b)) => {
                            let text = |p: &Page| p.items.iter().map(|i| i.get().to_owned()).collect::<Vec<_>>();
                            prop_assert_eq!((text(&a), a.total, a.pages), (text(&b), b.total, b.pages));
                        }
                        (Err(a), Err(b)) => {
                            // The same failure; serde's own wording may differ.
                            let kind = |e: ApiError| e.to_string().split(' ').next().unwrap_or_default().to_owned();
                            prop_assert_eq!(kind(a), kind(b));
                        }
                        (a, b) => prop_assert!(false, "{:?} vs {:?} for {}", a.map(|p| p.total), b.map(|p| p.total), body),
                    }
                }
            }

            #[test]
            fn any_item_comes_back_as_sent(value in any_json(), key in prop_oneof![Just("users"), Just("campaigns")]) {
                let body = serde_json::json!({"data": {key: [value.clone()], "pagination": value}});
                let page = Page::parse(body.to_string().as_bytes(), key, 1000).unwrap();
                prop_assert_eq!(page.items.len(), 1);
                prop_assert_eq!(serde_json::from_str::<Value>(page.items[0].get()).unwrap(), value);
            }
        }
    }
}
