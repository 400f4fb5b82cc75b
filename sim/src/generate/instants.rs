//! The tricky instants some rows are attributed at: local midnights and DST changes, where a
//! time window's edges are easiest to get wrong.

use crate::clock::resolve_local;
use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Zones whose midnights and DST changes give the tricky instants.
const ZONES: [Tz; 5] = [
    Tz::UTC,
    Tz::America__New_York,
    Tz::Asia__Kolkata,
    Tz::Australia__Lord_Howe,
    Tz::America__Santiago,
];

/// Local midnights (1st of each month and days around DST changes) and DST changes of the
/// [`ZONES`] in `[start, end]`, each with its neighbours ±1 ms.
pub(super) fn tricky_instants(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for tz in ZONES {
        let (changes, mut days) = dst_changes(tz, start, end);
        out.extend(changes);
        days.extend(month_starts(start, end));
        out.extend(
            days.into_iter()
                .filter_map(|d| resolve_local(tz, d.and_time(NaiveTime::MIN))),
        );
    }
    with_neighbours(out, start, end)
}

/// The instants from `start` to `end` where `tz`'s offset changes, and the local days around
/// each (the day before, of, and after).
fn dst_changes(
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Vec<NaiveDate>) {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let (mut changes, mut days) = (Vec::new(), Vec::new());
    // DST changes fall on :00 or :30 UTC, so a 15-minute scan from a quarter hour hits them.
    let mut t =
        DateTime::from_timestamp(start.timestamp() - start.timestamp().rem_euclid(900), 0).unwrap();
    while t < end {
        let next = t + TimeDelta::minutes(15);
        if offset(next) != offset(t) {
            changes.push(next);
            let day = next.with_timezone(&tz).date_naive();
            days.extend([day.pred_opt().unwrap(), day, day.succ_opt().unwrap()]);
        }
        t = next;
    }
    (changes, days)
}

/// The 1st of every month from `start`'s month to `end`.
fn month_starts(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<NaiveDate> {
    let mut days = Vec::new();
    let mut day = start.date_naive().with_day(1).unwrap();
    while day <= end.date_naive() {
        days.push(day);
        day = day + Months::new(1);
    }
    days
}

/// Every instant with its neighbours ±1 ms, those in `[start, end]`, sorted and without repeats.
fn with_neighbours(
    instants: Vec<DateTime<Utc>>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let ms = TimeDelta::milliseconds(1);
    let mut all: Vec<_> = instants
        .into_iter()
        .flat_map(|t| [t - ms, t, t + ms])
        .filter(|t| (start..=end).contains(t))
        .collect();
    all.sort();
    all.dedup();
    all
}
