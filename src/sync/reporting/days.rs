//! What a day of the Reporting API is: the first one wanted, the order days are read in, the
//! pages a day takes, where a day's paging may stop, and which of a page's rows belong to it.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::api::reporting::{ReportPage, REPORT_PAGE_SIZE};
use crate::config::ReportingSettings;
use crate::model::report_days::{DayPlan, Due};
use crate::model::reporting::{Reading, ReportRow};
use crate::model::time::{local_date, start_of_day};

/// The days a run looks at `now`: from [`first_day`] to today (or the last day wanted); none
/// when the project has no campaigns.
pub(crate) fn day_plan(
    settings: &ReportingSettings,
    created: &[Option<DateTime<Utc>>],
    now: DateTime<Utc>,
    rescan: bool,
) -> Option<DayPlan> {
    let today = local_date(settings.timezone, now);
    Some(DayPlan {
        today,
        last: settings.last.unwrap_or(today),
        first: first_day(settings, created, today)?,
        lookback_days: settings.lookback_days,
        refresh: settings.refresh,
        now,
        rescan,
    })
}

/// The first day to read: `--since`, but no earlier than the day the first campaign was
/// created (every number before it is zero); none when the project has no campaigns.
fn first_day(
    settings: &ReportingSettings,
    created: &[Option<DateTime<Utc>>],
    today: NaiveDate,
) -> Option<NaiveDate> {
    if created.is_empty() {
        return None;
    }
    let oldest = created
        .iter()
        .flatten()
        .min()
        .map(|t| local_date(settings.timezone, *t));
    let fallback = today - chrono::Duration::days(i64::from(settings.lookback_days));
    Some(match (settings.since, oldest) {
        (Some(since), Some(oldest)) => since.max(oldest),
        (Some(since), None) => since,
        (None, Some(oldest)) => oldest,
        (None, None) => fallback,
    })
}

/// The days due of every view, in the order they are read: recent ones newest first, then
/// the backfill oldest first; a day's views one after the other.
pub(crate) fn in_order(plan: &DayPlan, due: Vec<(&'static str, Due)>) -> Vec<(&'static str, Due)> {
    let mut due: Vec<(usize, (&'static str, Due))> = due.into_iter().enumerate().collect();
    due.sort_by_key(|(i, (_, d))| {
        let day = i64::from(d.day.num_days_from_ce());
        if d.recent(plan) {
            (0, -day, *i)
        } else {
            (1, day, *i)
        }
    });
    due.into_iter().map(|(_, d)| d).collect()
}

/// Pages a day's full read takes: one per hundred campaigns created by the day's end, at least
/// one.
pub(crate) fn pages_of_day(
    timezone: chrono_tz::Tz,
    day: NaiveDate,
    created: &[Option<DateTime<Utc>>],
) -> u64 {
    let end = day_end(timezone, day);
    let existing = created.iter().filter(|c| c.is_none_or(|c| c < end)).count() as u64;
    existing.div_ceil(u64::from(REPORT_PAGE_SIZE)).max(1)
}

/// The first instant after a local day.
pub(super) fn day_end(timezone: chrono_tz::Tz, day: NaiveDate) -> DateTime<Utc> {
    start_of_day(timezone, day.succ_opt().unwrap_or(day))
}

/// Whether a page is a day's last: the list's last page, or, in a list sorted oldest first,
/// a page that reaches a campaign created after the day (the rest are zeros by definition).
/// A page out of that order is not trusted to end the day early.
pub(super) fn last_page(answer: &ReportPage, page: u32, end: DateTime<Utc>) -> bool {
    if u64::from(page) >= answer.pages || answer.campaigns.is_empty() {
        return true;
    }
    let created: Vec<Option<DateTime<Utc>>> = answer.campaigns.iter().map(|(_, c)| *c).collect();
    let ordered = created.iter().all(Option::is_some) && created.windows(2).all(|w| w[0] <= w[1]);
    ordered && created.last().copied().flatten().is_some_and(|c| c >= end)
}

/// The page's rows, but those of campaigns created after the day whose numbers are all zero,
/// as the contract says they are: a campaign had no day before it existed.
pub(super) fn of_the_day(
    rows: Vec<ReportRow>,
    campaigns: &[(String, Option<DateTime<Utc>>)],
    end: DateTime<Utc>,
) -> Vec<ReportRow> {
    let later: HashSet<&str> = campaigns
        .iter()
        .filter(|(_, c)| c.is_some_and(|c| c >= end))
        .map(|(id, _)| id.as_str())
        .collect();
    rows.into_iter()
        .filter(|r| !later.contains(r.display_id.as_str()) || !all_zero(r))
        .collect()
}

fn all_zero(row: &ReportRow) -> bool {
    row.metrics.iter().all(|m| match m {
        Reading::Absent => true,
        Reading::Number(n) => !n.bytes().any(|b| (b'1'..=b'9').contains(&b)),
        Reading::Unparsed => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(text.parse().unwrap())
    }

    fn page(created: &[Option<DateTime<Utc>>], pages: u64) -> ReportPage {
        ReportPage {
            campaigns: created
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("c{i}"), *c))
                .collect(),
            pages,
            ..ReportPage::default()
        }
    }

    #[test]
    fn a_day_ends_at_the_first_campaign_created_after_it_in_an_ordered_page() {
        let end: DateTime<Utc> = "2026-11-20T18:30:00Z".parse().unwrap();
        let before = at("2026-11-01T00:00:00Z");
        let after = at("2026-11-21T00:00:00Z");
        assert!(last_page(&page(&[before, after], 3), 1, end));
        assert!(!last_page(&page(&[before, before], 3), 1, end));
        // Out of order, or with a creation time missing: not trusted to end the day.
        assert!(!last_page(&page(&[after, before], 3), 1, end));
        assert!(!last_page(&page(&[before, None, after], 3), 1, end));
        assert!(last_page(&page(&[before, before], 3), 3, end));
        assert!(last_page(&page(&[], 3), 2, end));
    }

    #[test]
    fn pages_count_the_campaigns_created_by_the_days_end() {
        let tz = chrono_tz::Asia::Kolkata;
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        // 23:59 in Kolkata is 18:29 UTC: still the day.
        let mut created = vec![at("2026-11-20T18:29:00Z"); 150];
        created.push(at("2026-11-20T18:30:00Z"));
        assert_eq!(pages_of_day(tz, day, &created), 2);
        assert_eq!(pages_of_day(tz, day, &created[..100]), 1);
        assert_eq!(pages_of_day(tz, day, &[]), 1);
    }
}
