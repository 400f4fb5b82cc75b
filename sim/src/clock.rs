//! The simulator's clock: the API's timestamp form, and local wall-clock times in a zone.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// ISO 8601 UTC with exactly three fractional digits and `Z`, as the API writes timestamps.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a wall-clock bound such as `2026-03-08T02:30:00.000` (fraction optional) in `tz`.
pub(crate) fn parse_local(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    resolve_local(tz, naive)
}

/// The instant of a local time: the earliest one when a DST fold makes it ambiguous, and the
/// end of the gap when a DST jump skips it.
pub(crate) fn resolve_local(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let instant = |n: NaiveDateTime| tz.from_local_datetime(&n).earliest().map(|t| t.to_utc());
    if let Some(t) = instant(naive) {
        return Some(t);
    }
    // Gaps start and end on whole minutes, so the first valid minute after is the gap's end.
    let mut minute = naive.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..24 * 60 {
        minute += TimeDelta::minutes(1);
        if let Some(t) = instant(minute) {
            return Some(t);
        }
    }
    None
}
