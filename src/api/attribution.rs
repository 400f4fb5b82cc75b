//! The answer of `GET /get-attribution-result`, read into the model: the documented fields,
//! empty strings as none, and the body kept as received.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::api::models::{escape_bad_bytes, preview};
use crate::api::ApiError;
use crate::model::lookup::{Answer, Attribution};
use crate::model::storable;

/// Reads the body of a 200. A body that is not a JSON object with a `data` object is garbled
/// (read again, as for pages); a `data` whose documented fields are not strings, or text
/// Postgres cannot store, is an answer that cannot be used, kept with the reason.
pub fn parse(body: &[u8]) -> Result<Answer, ApiError> {
    let (text, recoded) = match std::str::from_utf8(body) {
        Ok(text) => (Cow::Borrowed(text), false),
        Err(_) => match escape_bad_bytes(body) {
            Some(text) => (Cow::Owned(text), true),
            None => return Err(garbled("not UTF-8", body)),
        },
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|e| garbled(&format!("not JSON ({e})"), body))?;
    let Some(data) = value.get("data").and_then(Value::as_object) else {
        return Err(garbled("no 'data' object", body));
    };
    let unusable = |reason: String| Answer::Unusable {
        reason,
        raw_text: Some(text.clone().into_owned()),
    };
    let problems = storable::problems(&text, recoded);
    if problems.any() {
        return Ok(unusable(format!("the answer {problems}")));
    }
    match attribution(data) {
        Ok(attribution) => Ok(Answer::Found {
            attribution: Box::new(attribution),
            raw: text.into_owned(),
        }),
        Err(reason) => Ok(unusable(reason)),
    }
}

/// Why a body is not an answer, without its contents when it looks like JSON: an answer may
/// hold personal data. A body of another kind (a proxy's HTML page) is shown in part.
fn garbled(what: &str, body: &[u8]) -> ApiError {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        ApiError::Decode(format!("{what}, {} bytes", body.len()))
    } else {
        ApiError::Decode(format!("{what}: {}", preview(body)))
    }
}

/// The documented fields of `data`; which one is not a string, if any.
fn attribution(data: &Map<String, Value>) -> Result<Attribution, String> {
    let field = |key: &str| -> Result<Option<String>, String> {
        match data.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Named by its kind, never quoted: it may hold anything.
            Some(other) => Err(format!("'{key}' is {}, not a string", kind(other))),
        }
    };
    Ok(Attribution {
        campaign_name: field("campaign_name")?,
        display_id: field("display_id")?,
        deeplink: field("deeplink")?,
        domain_name: field("domain_name")?,
        ad_set_id: field("ad_set_id")?,
        ad_set_name: field("ad_set_name")?,
        ad_creative_id: field("ad_creative_id")?,
        ad_creative_name: field("ad_creative_name")?,
        keyword_id: field("keyword_id")?,
        keyword_name: field("keyword_name")?,
        ad_network: field("ad_network")?,
        attribution_type: field("attribution_type")?,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &str) -> Attribution {
        match parse(body.as_bytes()).unwrap() {
            Answer::Found { attribution, raw } => {
                assert_eq!(raw, body, "the body is kept as received");
                *attribution
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_documented_answer_reads_with_empty_strings_as_none() {
        let body = r#"{"msg":"ok","status":200,"data":{"campaign_name":"Spring","display_id":"spring-7Q","deeplink":null,"domain_name":"go.example.org","ad_set_id":"1","ad_set_name":"L","ad_creative_id":"2","ad_creative_name":"C","keyword_id":"","keyword_name":"","ad_network":"META","attribution_type":"INORGANIC","extra_key":{"kept":true}}}"#;
        let a = found(body);
        assert_eq!(a.campaign_name.as_deref(), Some("Spring"));
        assert_eq!(a.deeplink, None);
        assert_eq!((a.keyword_id, a.keyword_name), (None, None));
        assert_eq!(a.attribution_type.as_deref(), Some("INORGANIC"));
    }

    #[test]
    fn garbled_bodies_are_read_again_and_odd_ones_kept_with_a_reason() {
        for garbled in [
            "<html>502</html>",
            r#"{"data":{"campaign_na"#,
            r#"{"msg":"x"}"#,
            "[1]",
        ] {
            let e = parse(garbled.as_bytes()).unwrap_err();
            assert!(e.is_retryable(), "{garbled}: {e}");
        }
        let body = r#"{"data":{"campaign_name":7,"attribution_type":"ORGANIC"}}"#;
        match parse(body.as_bytes()).unwrap() {
            Answer::Unusable { reason, raw_text } => {
                assert!(reason.contains("'campaign_name' is a number"), "{reason}");
                assert_eq!(raw_text.as_deref(), Some(body));
            }
            other => panic!("{other:?}"),
        }
        let nul = r#"{"data":{"campaign_name":"a\u0000b"}}"#;
        assert!(matches!(
            parse(nul.as_bytes()).unwrap(),
            Answer::Unusable { reason, .. } if reason.contains("NUL")
        ));
    }
}
