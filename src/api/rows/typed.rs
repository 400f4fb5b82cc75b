//! A row's typed columns, and `extra`: every member the columns cannot hold exactly (a text
//! that was a number, a time not in the wire form, another campaign's id, a member the API does
//! not document) and the documented members that were absent. `UserRow::to_wire` undoes it.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::rows::members::{small, Field, Members, CAMPAIGN, TEXTS, TIMES, USER_DATA};
use crate::api::rows::time::{is_wire_time, parse_time};
use crate::model::user::{TEXT_FIELDS, TIME_FIELDS};

/// The key in `extra` listing the documented members that were absent.
const ABSENT: &str = "__absent";

/// A row's typed columns, and what they cannot hold exactly.
pub(super) struct Typed {
    pub(super) texts: [Option<String>; TEXT_FIELDS.len()],
    pub(super) times: [Option<DateTime<Utc>>; TIME_FIELDS.len()],
    pub(super) extra: Option<Value>,
}

/// Types a row's members; `original_at` is `attributed_at` as received, read as
/// `attributed_at`.
pub(super) fn columns_and_extra<'a>(
    campaign: &str,
    Members { known, unknown }: Members<'a>,
    original_at: Option<Field<'a>>,
    attributed_at: DateTime<Utc>,
) -> Typed {
    let mut extra = Extra::default();
    // Read above; present, since it parsed.
    if let Some(original) = original_at {
        keep_attributed_at(&mut extra, original, attributed_at);
    }
    let received = extra.member(known[CAMPAIGN], "campaign_display_id");
    keep_campaign(&mut extra, campaign, received);
    let texts = std::array::from_fn(|i| {
        let field = extra.member(known[TEXTS + i], TEXT_FIELDS[i]);
        text_column(&mut extra, TEXT_FIELDS[i], field)
    });
    let times = std::array::from_fn(|i| {
        let field = extra.member(known[TIMES + i], TIME_FIELDS[i]);
        time_column(&mut extra, TIME_FIELDS[i], field)
    });
    // user_data is kept as text; only whether it was there matters here.
    if known[USER_DATA].is_none() {
        extra.missing("user_data");
    }
    for (key, value) in unknown {
        extra.members.insert(key.into_owned(), small(value));
    }
    Typed {
        texts,
        times,
        extra: extra.finish(),
    }
}

/// Puts back into a rebuilt row what `extra` holds: members as received, and the absent ones
/// taken out again.
pub(super) fn restore(obj: &mut Map<String, Value>, extra: &Map<String, Value>) {
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

/// `extra` as it is gathered: members kept as received, and documented ones found absent.
#[derive(Default)]
struct Extra {
    members: Map<String, Value>,
    absent: Vec<Value>,
}

impl Extra {
    /// A documented member's value, noting it absent when it is.
    fn member<'a>(&mut self, raw: Option<&'a RawValue>, key: &str) -> Option<Field<'a>> {
        if raw.is_none() {
            self.missing(key);
        }
        raw.map(Field::of)
    }

    fn missing(&mut self, key: &str) {
        self.absent.push(Value::String(key.to_owned()));
    }

    fn keep(&mut self, key: &str, value: Value) {
        self.members.insert(key.to_owned(), value);
    }

    /// `extra`, when there is anything in it.
    fn finish(mut self) -> Option<Value> {
        if !self.absent.is_empty() {
            self.members
                .insert(ABSENT.into(), Value::Array(self.absent));
        }
        (!self.members.is_empty()).then_some(Value::Object(self.members))
    }
}

/// Keeps `attributed_at` as received unless it is exactly the wire form of the time read.
fn keep_attributed_at(extra: &mut Extra, original: Field, attributed_at: DateTime<Utc>) {
    if !original
        .as_str()
        .is_some_and(|s| is_wire_time(s, attributed_at))
    {
        extra.keep("attributed_at", original.into_value());
    }
}

/// Keeps a `campaign_display_id` other than that of the listing the row came from.
fn keep_campaign(extra: &mut Extra, campaign: &str, received: Option<Field>) {
    match received {
        Some(same) if same.as_str() == Some(campaign) => {}
        Some(other) => {
            let other = other.into_value();
            if other
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(campaign))
            {
                tracing::warn!(campaign, received = %other, "campaign id differs only in letter case");
            }
            extra.keep("campaign_display_id", other);
        }
        None => {}
    }
}

/// A text column: a string as received; anything else as its JSON text, kept in `extra` too.
fn text_column(extra: &mut Extra, key: &str, field: Option<Field>) -> Option<String> {
    match field? {
        Field::Null => None,
        Field::Str(s) => Some(s.to_owned()),
        Field::Other(Value::String(s)) => Some(s),
        Field::Other(other) => {
            let text = other.to_string();
            extra.keep(key, other);
            Some(text)
        }
    }
}

/// A time column; the member is kept in `extra` too unless it is exactly in the wire form.
fn time_column(extra: &mut Extra, key: &str, field: Option<Field>) -> Option<DateTime<Utc>> {
    match field? {
        Field::Null => None,
        other => {
            let text = other.as_str();
            let parsed = text.and_then(parse_time);
            let exact = parsed.is_some_and(|t| text.is_some_and(|s| is_wire_time(s, t)));
            if !exact {
                extra.keep(key, other.into_value());
            }
            parsed
        }
    }
}
