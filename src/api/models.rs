//! The wire format: the response envelope and its pagination, read leniently.
//!
//! Items stay raw JSON text so that no key the server sends is lost and the bulk of a row
//! (`user_data` with its device data) is never built into a tree; typing them is a separate step
//! (`db::rows` for users, `db::campaigns` for campaigns).

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::api::ApiError;

/// One page of a list endpoint.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Box<RawValue>>,
    /// All matches over all pages (`data.pagination.total`).
    pub total: u64,
    /// Page count (`data.pagination.pages`).
    pub pages: u64,
}

impl Page {
    /// Reads `{ "data": { <list_key>: [...], "pagination": { "total", "pages" } } }`.
    ///
    /// `total_campaigns` / `total_users` count the rows on this page only, so they are ignored.
    pub fn parse(body: &[u8], list_key: &str) -> Result<Page, ApiError> {
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
        })
    }
}

/// A count that may arrive as a number or as a numeric string.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The start of a body, for error messages.
pub fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pagination_not_page_counts() {
        let body = br#"{"msg":"ok","status":200,"data":{"total_users":1,"users":[{"a":1}],
            "pagination":{"total":1874,"pages":2,"page":1,"limit":1000}}}"#;
        let page = Page::parse(body, "users").unwrap();
        assert_eq!((page.items.len(), page.total, page.pages), (1, 1874, 2));
        assert_eq!(page.items[0].get(), r#"{"a":1}"#);
    }

    #[test]
    fn html_error_page_is_a_decode_error() {
        let err = Page::parse(b"<html><body>502 Bad Gateway</body></html>", "users").unwrap_err();
        assert!(matches!(err, ApiError::Decode(_)));
        assert!(err.to_string().contains("502 Bad Gateway"));
    }

    #[test]
    fn numbers_as_strings_are_read() {
        let body = br#"{"data":{"campaigns":[],"pagination":{"total":"0","pages":"0"}}}"#;
        let page = Page::parse(body, "campaigns").unwrap();
        assert_eq!((page.total, page.pages), (0, 0));
    }

    mod properties {
        use super::*;
        use crate::testing::any_json;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = Page::parse(&bytes, "users");
            }

            #[test]
            fn any_json_never_panics(value in any_json(), key in prop_oneof![Just("users"), Just("campaigns")]) {
                let _ = Page::parse(value.to_string().as_bytes(), key);
                let body = serde_json::json!({"data": {key: [value.clone()], "pagination": value}});
                let _ = Page::parse(body.to_string().as_bytes(), key);
            }
        }
    }
}
