//! The Reporting API's numbers: the metrics a campaign, ad set, creative or keyword carries per
//! day, and how their formatted text (`"3,201"`, `"$12,540.50"`, `"95.38%"`) becomes a number
//! without ever becoming a wrong one.

use serde_json::Value;

/// A metric: its key in the API's items and the column that stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub key: &'static str,
    pub column: &'static str,
}

const fn metric(key: &'static str, column: &'static str) -> Metric {
    Metric { key, column }
}

/// Every documented metric, in column order. Counts and money alike are `numeric`: money in
/// the response's `display_currency`, `conversion` in percent as sent (`95.38` for `"95.38%"`).
pub const METRICS: [Metric; 17] = [
    metric("clicks", "clicks"),
    metric("installs", "installs"),
    metric("sign-ups", "signups"),
    metric("reinstalls", "reinstalls"),
    metric("reengagements", "reengagements"),
    metric("uninstalls", "uninstalls"),
    metric("suspicious_installs", "suspicious_installs"),
    metric("click_through_attribution", "click_through_attribution"),
    metric("view_through_attribution", "view_through_attribution"),
    metric("conversion", "conversion"),
    metric("revenue", "revenue"),
    metric("spend", "spend"),
    metric("roas", "roas"),
    metric("cost_per_install", "cost_per_install"),
    metric("cost_per_reinstall", "cost_per_reinstall"),
    metric("cost_per_signup", "cost_per_signup"),
    metric("revenue_event_count", "revenue_event_count"),
];

/// Where a row sits: the campaign, or one of the levels below it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Campaign,
    AdSet { ad_set: String },
    AdCreative { ad_set: String, creative: String },
    Keyword { ad_set: String, keyword: String },
}

impl Level {
    /// What a row of this level is, in a sentence.
    pub fn noun(&self) -> &'static str {
        match self {
            Level::Campaign => "campaign",
            Level::AdSet { .. } => "ad set",
            Level::AdCreative { .. } => "ad creative",
            Level::Keyword { .. } => "keyword",
        }
    }
}

/// One row of a day's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow {
    pub display_id: String,
    pub level: Level,
    pub name: Option<String>,
    /// Per [`METRICS`], in order.
    pub metrics: Vec<Reading>,
    /// The metrics that were sent but could not be read as numbers.
    pub unparsed: Vec<&'static str>,
    /// The item's JSON text as received, without the levels below it (they are rows of their
    /// own) and without the connected ad account (its owner's name and email).
    pub raw: String,
}

impl ReportRow {
    /// The key the row is stored under: its table's, less the day and view every row of a
    /// page shares.
    pub fn key(&self) -> (&str, &Level) {
        (&self.display_id, &self.level)
    }

    /// About what the row holds in memory, in bytes.
    pub fn weight(&self) -> usize {
        let ids = match &self.level {
            Level::Campaign => 0,
            Level::AdSet { ad_set } => ad_set.len(),
            Level::AdCreative { ad_set, creative } => ad_set.len() + creative.len(),
            Level::Keyword { ad_set, keyword } => ad_set.len() + keyword.len(),
        };
        let numbers: usize = self
            .metrics
            .iter()
            .map(|m| match m {
                Reading::Number(n) => n.len(),
                _ => 0,
            })
            .sum();
        std::mem::size_of::<ReportRow>()
            + self.metrics.len() * std::mem::size_of::<Reading>()
            + self.display_id.len()
            + ids
            + self.name.as_ref().map_or(0, String::len)
            + numbers
            + self.raw.len()
    }
}

/// An item of a page that is not stored, kept in `rejected_rows` with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// Its campaign's `display_id`, or [`crate::model::campaign::UNSTORABLE_ID`] when that
    /// cannot be stored.
    pub display_id: String,
    pub reason: String,
    /// The item's JSON text as received.
    pub raw: String,
}

/// The rows of a page with each key once: of rows listed more than once under one key, one is
/// kept when all are the same, and all are set aside when they differ (which of them is
/// right cannot be told). Rows keep their order.
pub fn dedupe(rows: Vec<ReportRow>) -> (Vec<ReportRow>, Vec<SetAside>) {
    use std::collections::HashMap;
    let mut first: HashMap<(&str, &Level), usize> = HashMap::new();
    // Per row: None when kept, Some(the first row of its key) when not.
    let mut copy_of: Vec<Option<usize>> = vec![None; rows.len()];
    let mut differs: Vec<bool> = vec![false; rows.len()];
    let mut copies: Vec<usize> = vec![1; rows.len()];
    for (i, row) in rows.iter().enumerate() {
        match first.get(&row.key()) {
            Some(&f) => {
                copy_of[i] = Some(f);
                copies[f] += 1;
                differs[f] |= rows[f] != *row;
            }
            None => {
                first.insert(row.key(), i);
            }
        }
    }
    drop(first);
    let mut kept = Vec::with_capacity(rows.len());
    let mut set_aside = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let head = copy_of[i].unwrap_or(i);
        if differs[head] {
            let reason = format!(
                "the page lists this {} {} times with different values; none of them is stored",
                row.level.noun(),
                copies[head]
            );
            set_aside.push(SetAside {
                display_id: row.display_id,
                reason,
                raw: row.raw,
            });
        } else if copy_of[i].is_none() {
            kept.push(row);
        }
    }
    (kept, set_aside)
}

/// A metric's value as stored: the number as decimal text for a `numeric` column, or none
/// (absent, null, or text that is not a number in the documented format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reading {
    Absent,
    Number(String),
    /// Sent, but not a number this parser is sure of: kept as text in `raw`, counted.
    Unparsed,
}

/// Reads one metric of an item.
pub fn read(item: &serde_json::Map<String, Value>, key: &str) -> Reading {
    match item.get(key) {
        None | Some(Value::Null) => Reading::Absent,
        Some(Value::Number(n)) => Reading::Number(n.to_string()),
        Some(Value::String(text)) => match parse_number(text) {
            Some(number) => Reading::Number(number),
            None => Reading::Unparsed,
        },
        Some(_) => Reading::Unparsed,
    }
}

/// The number a formatted value stands for, as plain decimal text (`"-12540.50"`); None for
/// anything that is not, without doubt, one number in the documented US format.
///
/// Accepted: an optional sign, an optional currency (`$`, `US$`, `₹`, `€`, `£`, `¥`, or a
/// three-letter code and a space) before or after the sign, digits grouped by commas in
/// threes or not grouped at all, an optional decimal point with digits, an optional `%`.
/// Refused, rather than guessed: `"1.234,56"` and `"1,5"` (another locale's separators),
/// `"N/A"`, `"-"`, `""`, two numbers, a sign twice.
pub fn parse_number(text: &str) -> Option<String> {
    let mut rest = text.trim();
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    }
    rest = strip_currency(rest);
    if let Some(r) = rest.strip_prefix('-') {
        if negative {
            return None;
        }
        negative = true;
        rest = r;
    }
    let rest = rest.strip_suffix('%').unwrap_or(rest).trim_end();
    let (whole, fraction) = match rest.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (rest, None),
    };
    let digits = whole_digits(whole)?;
    if let Some(f) = fraction {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let sign = if negative { "-" } else { "" };
    Some(match fraction {
        Some(f) => format!("{sign}{digits}.{f}"),
        None => format!("{sign}{digits}"),
    })
}

/// The text after a leading currency symbol or code, if any.
fn strip_currency(text: &str) -> &str {
    for symbol in ["US$", "$", "₹", "€", "£", "¥"] {
        if let Some(rest) = text.strip_prefix(symbol) {
            return rest.trim_start();
        }
    }
    let code: String = text.chars().take(3).collect();
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
        if let Some(rest) = text[3..].strip_prefix(' ') {
            return rest.trim_start();
        }
    }
    text
}

/// The digits of the whole part: plain, or grouped by commas in threes after a first group
/// of one to three.
fn whole_digits(whole: &str) -> Option<String> {
    if whole.is_empty() {
        return None;
    }
    let groups: Vec<&str> = whole.split(',').collect();
    let all_digits = |g: &str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit());
    if !groups.iter().all(|g| all_digits(g)) {
        return None;
    }
    if groups.len() > 1 && (groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3)) {
        return None;
    }
    Some(groups.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_formats_read_as_their_numbers() {
        let cases = [
            ("3,201", "3201"),
            ("$12,540.50", "12540.50"),
            ("95.38%", "95.38"),
            ("0.98", "0.98"),
            ("0", "0"),
            ("$0.00", "0.00"),
            ("-$3.10", "-3.10"),
            ("$-3.10", "-3.10"),
            ("₹1,00,000", ""),
            ("1,234,567", "1234567"),
            ("USD 1,234.5", "1234.5"),
            ("  42  ", "42"),
        ];
        for (text, number) in cases {
            let parsed = parse_number(text);
            if number.is_empty() {
                assert_eq!(parsed, None, "{text}");
            } else {
                assert_eq!(parsed.as_deref(), Some(number), "{text}");
            }
        }
    }

    #[test]
    fn anything_doubtful_is_no_number() {
        for text in [
            "", "-", "N/A", "1.234,56", "1,5", "12,34", "1,2345", ",123", "1.", ".5", "--3",
            "-$-3", "3 201", "1e5", "$", "%", "12.5.1", "abc", "1,234.5x",
        ] {
            assert_eq!(parse_number(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_metric_is_absent_a_number_or_unparsed() {
        let item: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"installs":"3,201","revenue":"N/A","roas":null,"d1":0.25,"x":[1]}"#,
        )
        .unwrap();
        assert_eq!(read(&item, "installs"), Reading::Number("3201".into()));
        assert_eq!(read(&item, "revenue"), Reading::Unparsed);
        assert_eq!(read(&item, "roas"), Reading::Absent);
        assert_eq!(read(&item, "clicks"), Reading::Absent);
        assert_eq!(read(&item, "d1"), Reading::Number("0.25".into()));
        assert_eq!(read(&item, "x"), Reading::Unparsed);
    }

    #[test]
    fn every_column_is_named_once() {
        let mut columns: Vec<&str> = METRICS.iter().map(|m| m.column).collect();
        columns.sort();
        columns.dedup();
        assert_eq!(columns.len(), METRICS.len());
    }

    proptest! {
        /// Whatever the amount, its US formatting reads back as that amount.
        #[test]
        fn formatted_amounts_read_back(cents in -10_000_000_000i64..10_000_000_000) {
            let (sign, abs) = if cents < 0 { ("-", -cents) } else { ("", cents) };
            let whole = (abs / 100).to_string();
            let mut grouped = String::new();
            for (i, c) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            let text = format!("{sign}${grouped}.{:02}", abs % 100);
            let expected = format!("{sign}{whole}.{:02}", abs % 100);
            prop_assert_eq!(parse_number(&text), Some(expected));
        }
    }
}
