//! A page of `GET /reporting/campaigns`, read into the model: each campaign and the ad sets,
//! creatives and keywords below it become rows of one day, their metrics read exactly or kept
//! unread, each with its item as received.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::api::models::escape_bad_bytes;
use crate::api::ApiError;
use crate::model::reporting::{read, Level, Reading, ReportRow, METRICS};
use crate::model::time::parse_instant;

/// A page of the campaign table.
#[derive(Debug, Default)]
pub struct ReportPage {
    pub rows: Vec<ReportRow>,
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

/// Reads a page's body. A body that is not the documented shape is garbled (asked again).
pub fn parse(body: &[u8]) -> Result<ReportPage, ApiError> {
    let text = match std::str::from_utf8(body) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => {
            std::borrow::Cow::Owned(escape_bad_bytes(body).ok_or_else(|| garbled("not UTF-8"))?)
        }
    };
    let value: Value = serde_json::from_str(&text).map_err(|_| garbled("not JSON"))?;
    let data = value
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| garbled("no 'data' object"))?;
    let items = data
        .get("campaigns")
        .and_then(Value::as_array)
        .ok_or_else(|| garbled("no 'campaigns' array"))?;
    let pagination = data.get("pagination");
    let pages = pagination
        .and_then(|p| p.get("pages"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let total = pagination
        .and_then(|p| p.get("total"))
        .and_then(Value::as_u64);
    let currency = data
        .get("display_currency")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut page = ReportPage {
        rows: Vec::new(),
        campaigns: Vec::new(),
        pages,
        total,
        currency,
    };
    for item in items {
        let item = item
            .as_object()
            .ok_or_else(|| garbled("a campaign is not an object"))?;
        let display_id =
            text_of(item, "display_id").ok_or_else(|| garbled("a campaign has no display_id"))?;
        let created =
            text_of(item, "created_at").and_then(|t| parse_instant(&t, chrono_tz::UTC).ok());
        page.campaigns.push((display_id.clone(), created));
        flatten(&display_id, item, &mut page.rows);
    }
    Ok(page)
}

fn garbled(what: &str) -> ApiError {
    ApiError::Decode(format!("the reporting page is not readable: {what}"))
}

/// The campaign's row and the rows of every level below it.
fn flatten(display_id: &str, item: &Map<String, Value>, rows: &mut Vec<ReportRow>) {
    rows.push(row(display_id, Level::Campaign, item));
    for ad_set in objects(item, "adSets") {
        let Some(ad_set_id) = id_of(ad_set) else {
            continue;
        };
        let level = Level::AdSet {
            ad_set: ad_set_id.clone(),
        };
        rows.push(row(display_id, level, ad_set));
        for creative in objects(ad_set, "adCreatives") {
            if let Some(id) = id_of(creative) {
                let level = Level::AdCreative {
                    ad_set: ad_set_id.clone(),
                    creative: id,
                };
                rows.push(row(display_id, level, creative));
            }
        }
        for keyword in objects(ad_set, "keywords") {
            if let Some(id) = id_of(keyword) {
                let level = Level::Keyword {
                    ad_set: ad_set_id.clone(),
                    keyword: id,
                };
                rows.push(row(display_id, level, keyword));
            }
        }
    }
}

fn row(display_id: &str, level: Level, item: &Map<String, Value>) -> ReportRow {
    let metrics: Vec<Reading> = METRICS.iter().map(|m| read(item, m.key)).collect();
    let unparsed = METRICS
        .iter()
        .zip(&metrics)
        .filter(|(_, r)| **r == Reading::Unparsed)
        .map(|(m, _)| m.key)
        .collect();
    let mut raw = item.clone();
    for below in ["adSets", "adCreatives", "keywords", "network_account"] {
        raw.remove(below);
    }
    ReportRow {
        display_id: display_id.to_owned(),
        level,
        name: text_of(item, "name"),
        metrics,
        unparsed,
        raw: Value::Object(raw),
    }
}

fn objects<'a>(
    item: &'a Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a Map<String, Value>> {
    item.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// An id sent as text or as a number, as text.
fn id_of(item: &Map<String, Value>) -> Option<String> {
    match item.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text_of(item: &Map<String, Value>, key: &str) -> Option<String> {
    item.get(key).and_then(Value::as_str).map(str::to_owned)
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

    fn metric(row: &ReportRow, key: &str) -> Reading {
        let i = METRICS.iter().position(|m| m.key == key).unwrap();
        row.metrics[i].clone()
    }

    #[test]
    fn a_page_becomes_rows_of_every_level() {
        let page = parse(PAGE.as_bytes()).unwrap();
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
        assert_eq!(campaign.raw["spend"], "N/A");
        assert!(campaign.raw.get("adSets").is_none());
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
                matches!(parse(body.as_bytes()), Err(ApiError::Decode(_))),
                "{body}"
            );
        }
    }
}
