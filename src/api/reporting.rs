//! A page of `GET /reporting/campaigns`, read into the model: each campaign and the ad sets,
//! creatives and keywords below it become rows of one day, their metrics read exactly or kept
//! unread, each with its item as received.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::models::escape_bad_bytes;
use crate::api::{ApiError, Page};
use crate::model::campaign::UNSTORABLE_ID;
use crate::model::reporting::{dedupe, read, Level, Reading, ReportRow, SetAside, METRICS};
use crate::model::storable;
use crate::model::time::parse_instant;

/// A page of the campaign table.
#[derive(Debug, Default)]
pub struct ReportPage {
    pub rows: Vec<ReportRow>,
    /// Items Postgres cannot store, or listed twice with different values.
    pub set_aside: Vec<SetAside>,
    /// Each campaign on the page with when it was created, in the order sent.
    pub campaigns: Vec<(String, Option<DateTime<Utc>>)>,
    pub pages: u64,
    /// Campaigns in the whole list, as `pagination.total` says.
    pub total: Option<u64>,
    pub currency: Option<String>,
}

/// What one page of the campaign table is asked for: local days `from` to `to` of the
/// project's timezone, campaigns oldest first, so paging can stop at the first one created
/// after the day.
#[derive(Clone, Debug)]
pub struct ReportQuery {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub view: &'static str,
    pub page: u64,
    /// Bytes the page's body may have, and again its rows: the run's memory budget.
    pub memory: usize,
}

/// Campaigns per page: the most the API serves.
pub const REPORT_PAGE_SIZE: u32 = 100;

impl ReportQuery {
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("from", self.from.format("%Y-%m-%d").to_string()),
            ("to", self.to.format("%Y-%m-%d").to_string()),
            ("view", self.view.to_owned()),
            ("sort_field", "created_at".to_owned()),
            ("sort_order", "ascending".to_owned()),
            ("page", self.page.to_string()),
            ("limit", REPORT_PAGE_SIZE.to_string()),
        ]
    }
}

/// What a page may hold before it is refused unread: more than asked for is no honest answer,
/// and a page must fit the memory the run allows.
#[derive(Clone, Copy, Debug)]
pub struct PageLimits {
    /// Campaigns: the `limit` asked for.
    pub campaigns: usize,
    /// Bytes the body may have, and again bytes its rows may weigh.
    pub bytes: usize,
}

/// Ad sets, ad creatives and keywords below one campaign, all together, that a page may list.
/// The contract sets no bound; ten thousand is far more than a campaign's dashboard row
/// shows, and keeps a page of a hundred campaigns within reach of the memory budget.
pub const MAX_ITEMS_PER_CAMPAIGN: usize = 10_000;

/// Reads a page's body, counting its items as they are read: a page with more campaigns than
/// asked for, more than [`MAX_ITEMS_PER_CAMPAIGN`] items below one, or rows weighing more than
/// `limits.bytes` is refused ([`ApiError::Protocol`]) before the rest of it is held. A body
/// that is not the documented shape is garbled (asked again). An item Postgres cannot store
/// (see [`storable`]) is set aside with why, and so is a key listed twice with different
/// values ([`dedupe`]).
pub fn parse(body: &[u8], limits: &PageLimits) -> Result<ReportPage, ApiError> {
    let list = Page::parse(body, "campaigns", limits.campaigns)?;
    let meta = meta(body)?;
    let pagination = meta.pagination.as_ref();
    let number = |key: &str| pagination.and_then(|p| p.get(key)).and_then(Value::as_u64);
    let mut reader = ItemReader {
        recoded: list.recoded,
        weight: 0,
        max_weight: limits.bytes,
        rows: Vec::new(),
        set_aside: Vec::new(),
    };
    let mut campaigns = Vec::with_capacity(list.items.len());
    for item in &list.items {
        campaigns.push(reader.campaign(item.get())?);
    }
    let (rows, duplicates) = dedupe(reader.rows);
    let mut set_aside = reader.set_aside;
    set_aside.extend(duplicates);
    Ok(ReportPage {
        rows,
        set_aside,
        campaigns,
        pages: number("pages").unwrap_or(1),
        total: number("total"),
        currency: meta
            .display_currency
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// What `data` says besides its campaigns.
#[derive(serde::Deserialize)]
struct Meta {
    data: Option<MetaData>,
}

#[derive(serde::Deserialize)]
struct MetaData {
    campaigns: Option<serde::de::IgnoredAny>,
    pagination: Option<Value>,
    display_currency: Option<Value>,
}

/// The envelope's `pagination` and `display_currency`, the campaigns skipped unheld.
fn meta(body: &[u8]) -> Result<MetaData, ApiError> {
    let text = match std::str::from_utf8(body) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(escape_bad_bytes(body).ok_or_else(|| garbled("not UTF-8"))?),
    };
    let meta: Meta = serde_json::from_str(&text).map_err(|_| garbled("not JSON"))?;
    let data = meta.data.ok_or_else(|| garbled("no 'data' object"))?;
    if data.campaigns.is_none() {
        return Err(garbled("no 'campaigns' array"));
    }
    Ok(data)
}

fn garbled(what: &str) -> ApiError {
    ApiError::Decode(format!("the reporting page is not readable: {what}"))
}

/// The keys of a level's item that are not its own fields.
const BELOW: [&str; 4] = ["adSets", "adCreatives", "keywords", "network_account"];

/// A level's item, its fields as received.
type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// Reads the items of a page into rows and items set aside, weighing what it holds.
struct ItemReader {
    recoded: bool,
    weight: usize,
    max_weight: usize,
    rows: Vec<ReportRow>,
    set_aside: Vec<SetAside>,
}

impl ItemReader {
    /// A campaign and the levels below it; its `display_id` and when it was created.
    fn campaign(&mut self, text: &str) -> Result<(String, Option<DateTime<Utc>>), ApiError> {
        let fields: Fields =
            serde_json::from_str(text).map_err(|_| garbled("a campaign is not an object"))?;
        let created = fields
            .get("created_at")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .and_then(|t| parse_instant(&t, chrono_tz::UTC).ok());
        let display_id = match self.key(&fields, "display_id", "its display_id") {
            Key::Stored(id) => id,
            Key::Missing => return Err(garbled("a campaign has no display_id")),
            Key::Unstorable(reason) => {
                let reason =
                    format!("{reason}; the campaign is kept whole, with the levels below it");
                // Kept whole, but for the ad account's owner, whom no table keeps.
                let raw = fields_text(&fields, &["network_account"]);
                self.keep_aside(UNSTORABLE_ID, reason, raw)?;
                return Ok((UNSTORABLE_ID.to_owned(), created));
            }
        };
        let mut below = MAX_ITEMS_PER_CAMPAIGN;
        self.level(&display_id, Level::Campaign, &fields)?;
        for ad_set in items(&fields, "adSets", &mut below)? {
            let Ok(ad_set_fields) = serde_json::from_str::<Fields>(ad_set.get()) else {
                continue;
            };
            let ad_set_id = match self.key(&ad_set_fields, "id", "its id") {
                Key::Stored(id) => id,
                Key::Missing => continue,
                Key::Unstorable(reason) => {
                    let reason =
                        format!("{reason}; the ad set is kept whole, with the levels below it");
                    self.keep_aside(&display_id, reason, ad_set.get().to_owned())?;
                    continue;
                }
            };
            let level = Level::AdSet {
                ad_set: ad_set_id.clone(),
            };
            self.level(&display_id, level, &ad_set_fields)?;
            for creative in items(&ad_set_fields, "adCreatives", &mut below)? {
                self.leaf(&display_id, creative, |id| Level::AdCreative {
                    ad_set: ad_set_id.clone(),
                    creative: id,
                })?;
            }
            for keyword in items(&ad_set_fields, "keywords", &mut below)? {
                self.leaf(&display_id, keyword, |id| Level::Keyword {
                    ad_set: ad_set_id.clone(),
                    keyword: id,
                })?;
            }
        }
        Ok((display_id, created))
    }

    /// A creative or keyword, whose id makes its level.
    fn leaf(
        &mut self,
        display_id: &str,
        item: &RawValue,
        level: impl FnOnce(String) -> Level,
    ) -> Result<(), ApiError> {
        let Ok(fields) = serde_json::from_str::<Fields>(item.get()) else {
            return Ok(());
        };
        match self.key(&fields, "id", "its id") {
            Key::Stored(id) => self.level(display_id, level(id), &fields),
            Key::Missing => Ok(()),
            Key::Unstorable(reason) => self.keep_aside(display_id, reason, item.get().to_owned()),
        }
    }

    /// The row of one item's own fields, or the item set aside when Postgres cannot store them.
    fn level(&mut self, display_id: &str, level: Level, fields: &Fields) -> Result<(), ApiError> {
        let raw = own_text(fields);
        let problems = storable::problems(&raw, self.recoded);
        if problems.any() {
            let reason = format!("the {} {problems}", level.noun());
            return self.keep_aside(display_id, reason, raw);
        }
        let item: Map<String, Value> =
            serde_json::from_str(&raw).map_err(|_| garbled("an item is not an object"))?;
        let row = row(display_id, level, &item, raw);
        self.hold(row.weight())?;
        self.rows.push(row);
        Ok(())
    }

    /// The key under `name`, sent as text or as a number: stored as text when Postgres can
    /// store and index it.
    fn key(&self, fields: &Fields, name: &str, what: &str) -> Key {
        let Some(raw) = fields.get(name) else {
            return Key::Missing;
        };
        let problems = storable::problems(raw.get(), self.recoded);
        if problems.any() {
            return Key::Unstorable(format!("{what} {problems}"));
        }
        let id = match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::String(s)) if !s.is_empty() => s,
            Ok(Value::Number(n)) => n.to_string(),
            _ => return Key::Missing,
        };
        if id.len() > storable::MAX_KEY_BYTES {
            return Key::Unstorable(storable::long_key_reason(what, id.len()));
        }
        Key::Stored(id)
    }

    fn keep_aside(
        &mut self,
        display_id: &str,
        reason: String,
        raw: String,
    ) -> Result<(), ApiError> {
        self.hold(raw.len() + reason.len() + display_id.len())?;
        self.set_aside.push(SetAside {
            display_id: display_id.to_owned(),
            reason,
            raw,
        });
        Ok(())
    }

    /// Counts `bytes` more held, refusing the page once its rows weigh more than allowed.
    fn hold(&mut self, bytes: usize) -> Result<(), ApiError> {
        self.weight += bytes;
        if self.weight > self.max_weight {
            return Err(ApiError::Protocol(format!(
                "a reporting page's rows weigh more than the {} MiB --memory-budget-mib allows",
                self.max_weight >> 20
            )));
        }
        Ok(())
    }
}

/// The items of the array under `key` (none when it is absent or not an array), counted
/// against what the campaign may still list below it.
fn items<'a>(
    fields: &Fields<'a>,
    key: &str,
    left: &mut usize,
) -> Result<Vec<&'a RawValue>, ApiError> {
    let Some(raw) = fields.get(key) else {
        return Ok(Vec::new());
    };
    if !raw.get().trim_start().starts_with('[') {
        return Ok(Vec::new());
    }
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let items = Bounded {
        max: *left,
        over: &over,
    }
    .deserialize(&mut de);
    if over.get() {
        return Err(ApiError::Protocol(format!(
            "a reporting page lists more than {MAX_ITEMS_PER_CAMPAIGN} ad sets, ad creatives and keywords below one campaign"
        )));
    }
    let items = items.map_err(|_| garbled("a list below a campaign is not an array"))?;
    *left -= items.len();
    Ok(items)
}

/// An array of at most `max` items, refused as soon as it has more.
struct Bounded<'c> {
    max: usize,
    over: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many items"));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// An item's own fields as JSON text: without the levels below it and the ad account.
fn own_text(fields: &Fields) -> String {
    fields_text(fields, &BELOW)
}

/// An item as JSON text without the fields named in `left_out`.
fn fields_text(fields: &Fields, left_out: &[&str]) -> String {
    let mut text = String::from("{");
    for (key, value) in fields {
        if left_out.contains(&key.as_str()) {
            continue;
        }
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str(&Value::String(key.clone()).to_string());
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    text
}

fn row(display_id: &str, level: Level, item: &Map<String, Value>, raw: String) -> ReportRow {
    let metrics: Vec<Reading> = METRICS.iter().map(|m| read(item, m.key)).collect();
    let unparsed = METRICS
        .iter()
        .zip(&metrics)
        .filter(|(_, r)| **r == Reading::Unparsed)
        .map(|(m, _)| m.key)
        .collect();
    ReportRow {
        display_id: display_id.to_owned(),
        level,
        name: item.get("name").and_then(Value::as_str).map(str::to_owned),
        metrics,
        unparsed,
        raw,
    }
}

/// A key of an item, as [`ItemReader::key`] reads it.
enum Key {
    Stored(String),
    Missing,
    Unstorable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{"msg":"Campaigns fetched successfully","status":200,
      "data":{"campaigns":[
        {"id":7,"display_id":"spring-ref-7Q","name":"Spring","created_at":"2025-11-03T06:41:09.215Z",
         "clicks":"3,201","installs":"1,204","sign-ups":"1,148","conversion":"95.38%",
         "revenue":"$12,540.50","spend":"N/A","roas":"0.98",
         "network_account":{"id":"a1","name":"Priya R","email":"priya@example.net"},
         "adSets":[{"id":"120233","name":"Lookalike","installs":"600",
            "adCreatives":[{"id":120222,"name":"Carousel_B","type":"image","installs":"400"}],
            "keywords":[{"id":"k1","name":"budget app","installs":"12"}]}]},
        {"id":8,"display_id":"k3Lm9P","name":"Organic","created_at":"2025-08-14T22:10:00.004Z",
         "clicks":"0","installs":"0","sign-ups":"0"}],
       "pagination":{"total":142,"pages":2,"page":1,"limit":100},
       "display_currency":"USD","view":"user_acquisition"}}"#;

    const LIMITS: PageLimits = PageLimits {
        campaigns: 100,
        bytes: 8 << 20,
    };

    fn metric(row: &ReportRow, key: &str) -> Reading {
        let i = METRICS.iter().position(|m| m.key == key).unwrap();
        row.metrics[i].clone()
    }

    #[test]
    fn a_page_becomes_rows_of_every_level() {
        let page = parse(PAGE.as_bytes(), &LIMITS).unwrap();
        assert_eq!((page.pages, page.total), (2, Some(142)));
        assert_eq!(page.currency.as_deref(), Some("USD"));
        assert_eq!(page.campaigns.len(), 2);
        let levels: Vec<&Level> = page.rows.iter().map(|r| &r.level).collect();
        assert_eq!(levels.len(), 5);
        assert_eq!(levels[0], &Level::Campaign);
        assert_eq!(
            levels[2],
            &Level::AdCreative {
                ad_set: "120233".into(),
                creative: "120222".into()
            }
        );
        let campaign = &page.rows[0];
        assert_eq!(metric(campaign, "sign-ups"), Reading::Number("1148".into()));
        assert_eq!(
            metric(campaign, "revenue"),
            Reading::Number("12540.50".into())
        );
        assert_eq!(
            metric(campaign, "conversion"),
            Reading::Number("95.38".into())
        );
        assert_eq!(metric(campaign, "spend"), Reading::Unparsed);
        assert_eq!(metric(campaign, "uninstalls"), Reading::Absent);
        assert_eq!(campaign.unparsed, ["spend"]);
        // The raw item keeps the text as sent, but neither the levels below nor the account.
        let raw: Value = serde_json::from_str(&campaign.raw).unwrap();
        assert_eq!(raw["spend"], "N/A");
        assert!(raw.get("adSets").is_none());
        assert!(!campaign.raw.to_string().contains("priya"));
    }

    #[test]
    fn a_body_of_another_shape_is_garbled() {
        for body in [
            "not json",
            r#"{"data":{}}"#,
            r#"{"data":{"campaigns":[1]}}"#,
            r#"{"data":{"campaigns":[{"name":"no id"}]}}"#,
        ] {
            assert!(
                matches!(parse(body.as_bytes(), &LIMITS), Err(ApiError::Decode(_))),
                "{body}"
            );
        }
    }

    fn body(campaigns: &[Value]) -> Vec<u8> {
        serde_json::json!({"data": {"campaigns": campaigns, "pagination": {"total": 1, "pages": 1}}})
            .to_string()
            .into_bytes()
    }

    fn campaign(id: &str, ad_sets: usize, creatives: usize) -> Value {
        let ad_sets: Vec<Value> = (0..ad_sets)
            .map(|a| {
                let creatives: Vec<Value> = (0..creatives)
                    .map(|c| serde_json::json!({"id": c, "installs": "1"}))
                    .collect();
                serde_json::json!({"id": a, "installs": "1", "adCreatives": creatives})
            })
            .collect();
        serde_json::json!({"display_id": id, "installs": "1", "adSets": ad_sets})
    }

    #[test]
    fn a_page_over_what_was_asked_is_refused() {
        let limits = PageLimits {
            campaigns: 2,
            bytes: 8 << 20,
        };
        let three: Vec<Value> = (0..3).map(|i| campaign(&format!("c{i}"), 1, 1)).collect();
        let refused = parse(&body(&three), &limits).unwrap_err();
        assert!(matches!(refused, ApiError::Protocol(_)), "{refused}");
        assert!(parse(&body(&three[..2]), &limits).is_ok());
        // Items below one campaign are counted across its ad sets.
        let per = MAX_ITEMS_PER_CAMPAIGN / 5;
        let ok = parse(&body(&[campaign("c", per, 4)]), &LIMITS).unwrap();
        assert_eq!(ok.rows.len(), 1 + MAX_ITEMS_PER_CAMPAIGN);
        let over = parse(&body(&[campaign("c", per, 5)]), &LIMITS).unwrap_err();
        assert!(over.to_string().contains("below one campaign"), "{over}");
        // Rows weighing more than allowed.
        let small = PageLimits {
            campaigns: 100,
            bytes: 100_000,
        };
        let heavy = parse(&body(&[campaign("c", 50, 10)]), &small).unwrap_err();
        assert!(heavy.to_string().contains("--memory-budget-mib"), "{heavy}");
    }

    #[test]
    fn items_postgres_cannot_store_are_set_aside_and_the_rest_read() {
        let long = "x".repeat(3000);
        let page = format!(
            r#"{{"data":{{"campaigns":[
              {{"display_id":"{long}","installs":"1","adSets":[{{"id":"a","installs":"2"}}],
                "network_account":{{"name":"Priya R","email":"priya@example.net"}}}},
              {{"display_id":"ok","name":"N\u0000L","installs":"3",
                "adSets":[{{"id":"a\ud800","installs":"4","adCreatives":[{{"id":1}}]}},{{"id":"b"}}]}}],
              "pagination":{{"total":2,"pages":1}}}}}}"#
        );
        let page = parse(page.as_bytes(), &LIMITS).unwrap();
        let levels: Vec<(&str, &Level)> = page.rows.iter().map(|r| r.key()).collect();
        assert_eq!(levels, [("ok", &Level::AdSet { ad_set: "b".into() })]);
        let aside: Vec<(&str, &str)> = page
            .set_aside
            .iter()
            .map(|s| (s.display_id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(aside.len(), 3, "{aside:?}");
        assert_eq!(aside[0].0, UNSTORABLE_ID);
        assert!(aside[0].1.contains("3000 bytes"), "{aside:?}");
        assert!(page.set_aside[0].raw.contains(r#""id":"a""#));
        assert!(!page.set_aside[0].raw.contains("priya"));
        assert!(aside[1].1.contains("NUL"), "{aside:?}");
        assert!(aside[2].1.contains("surrogate"), "{aside:?}");
        assert_eq!(page.campaigns[0].0, UNSTORABLE_ID);
    }

    #[test]
    fn a_key_listed_twice_is_kept_once_when_the_same_and_set_aside_when_not() {
        let same = campaign("c", 1, 1);
        let mut other = campaign("d", 1, 0);
        let page = parse(&body(&[same.clone(), same, other.clone()]), &LIMITS).unwrap();
        assert_eq!(page.rows.len(), 5);
        assert!(page.set_aside.is_empty());
        other["installs"] = "2".into();
        let page = parse(&body(&[campaign("d", 1, 0), other]), &LIMITS).unwrap();
        // The campaign's two rows differ; its ad set's do not.
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.set_aside.len(), 2);
        assert!(page.set_aside[0]
            .reason
            .contains("2 times with different values"));
    }
}
