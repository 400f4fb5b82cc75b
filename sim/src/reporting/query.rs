//! What a Reporting API request asks for: the project days, the page, the order and the view.
//! Anything it cannot read is a 422, the answer the contract documents for a bad `limit`.

use super::filter::Filter;
use crate::clock::resolve_local;
use crate::paging::Paging;
use crate::reply::ApiError;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;

/// The largest `limit`, and the one used when it is absent.
const MAX_LIMIT: usize = 100;
const DEFAULT_LIMIT: usize = 10;

/// Which set of numbers is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum View {
    /// New users: installs and cost per install.
    UserAcquisition,
    /// Users won back: reinstalls, re-engagements and cost per reinstall.
    Retargeting,
}

impl View {
    pub(super) fn name(self) -> &'static str {
        match self {
            View::UserAcquisition => "user_acquisition",
            View::Retargeting => "retargeting",
        }
    }

    fn parse(view: Option<&String>) -> Result<View, ApiError> {
        match view.map(String::as_str) {
            None | Some("user_acquisition") => Ok(View::UserAcquisition),
            Some("retargeting") => Ok(View::Retargeting),
            Some(v) => Err(ApiError::unprocessable(format!("Invalid view '{v}'."))),
        }
    }
}

/// The `sort_field` values, in the contract's order; `installs` is the default.
pub(super) const SORT_FIELDS: [&str; 10] = [
    "installs",
    "clicks",
    "signups",
    "revenue",
    "spend",
    "created_at",
    "uninstalls",
    "conversion",
    "suspicious_installs",
    "roas",
];

/// `sort_field` (one of [`SORT_FIELDS`]) and `sort_order`.
pub(super) struct Sort {
    pub(super) field: &'static str,
    pub(super) ascending: bool,
}

impl Sort {
    fn parse(q: &HashMap<String, String>) -> Result<Sort, ApiError> {
        let field = q.get("sort_field").map_or("installs", String::as_str);
        let Some(field) = SORT_FIELDS.into_iter().find(|f| *f == field) else {
            return Err(ApiError::unprocessable(format!(
                "Invalid sort_field '{field}'."
            )));
        };
        let ascending = match q.get("sort_order").map(String::as_str) {
            None | Some("descending") => false,
            Some("ascending") => true,
            Some(o) => {
                return Err(ApiError::unprocessable(format!(
                    "Invalid sort_order '{o}'."
                )))
            }
        };
        Ok(Sort { field, ascending })
    }
}

/// A parsed request.
pub(super) struct Request {
    /// First and last project day, both inclusive; an absent one is open (lifetime).
    pub(super) from: Option<NaiveDate>,
    pub(super) to: Option<NaiveDate>,
    pub(super) paging: Paging,
    pub(super) sort: Sort,
    pub(super) view: View,
    pub(super) filter: Filter,
}

impl Request {
    /// Reads the days, the page, the order, the view and the filters, in that order.
    pub(super) fn parse(q: &HashMap<String, String>) -> Result<Request, ApiError> {
        let from = day(q, "from", "start_date")?;
        let to = day(q, "to", "end_date")?;
        if let Some((f, t)) = from.zip(to).filter(|(f, t)| f > t) {
            return Err(ApiError::unprocessable(format!(
                "from {f} is after to {t}."
            )));
        }
        Ok(Request {
            from,
            to,
            paging: Paging::parse_capped(q, DEFAULT_LIMIT, MAX_LIMIT)?,
            sort: Sort::parse(q)?,
            view: View::parse(q.get("view"))?,
            filter: Filter::parse(q)?,
        })
    }

    /// Whether `from` or `to` was sent.
    pub(super) fn has_date_filter(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// The instants of the days in `tz`: from the first local midnight to the last millisecond
    /// before the midnight after `to`, as the time windows of the Data APIs are inclusive.
    pub(super) fn bounds(&self, tz: Tz) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let midnight = |d: NaiveDate| resolve_local(tz, d.and_time(NaiveTime::MIN));
        let start = self.from.and_then(midnight);
        let after = self.to.and_then(|t| t.succ_opt()).and_then(midnight);
        (start, after.map(|a| a - TimeDelta::milliseconds(1)))
    }
}

/// A `YYYY-MM-DD` day from `key`, or else from its alias.
fn day(q: &HashMap<String, String>, key: &str, alias: &str) -> Result<Option<NaiveDate>, ApiError> {
    let Some(text) = q
        .get(key)
        .or_else(|| q.get(alias))
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(d) => Ok(Some(d)),
        Err(_) => Err(ApiError::unprocessable(format!(
            "Invalid {key} '{text}'. Dates are YYYY-MM-DD."
        ))),
    }
}
