//! Reading the JSON bodies of the write and client APIs.

use serde_json::{Map, Value};

/// A request body: a JSON object.
pub(crate) type Body = Map<String, Value>;

/// A JSON object, or an empty one for anything else.
pub(crate) fn object(v: Option<&Value>) -> Body {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

pub(crate) fn parse_body(bytes: &[u8]) -> Option<Body> {
    serde_json::from_slice(bytes).ok()
}

/// A non-empty string field.
pub(crate) fn text<'a>(body: &'a Body, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}
