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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Level {
    Campaign,
    AdSet { ad_set: String },
    AdCreative { ad_set: String, creative: String },
    Keyword { ad_set: String, keyword: String },
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
    /// The item as received, without the levels below it (they are rows of their own) and
    /// without the connected ad account (its owner's name and email).
    pub raw: Value,
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
