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

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn timestamps_have_three_fraction_digits_and_z() {
        let t = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        assert_eq!(ts(t), "2026-05-28T20:26:40.000Z");
    }

    #[test]
    fn local_bounds_are_read_in_the_zone() {
        let kolkata = parse_local("2026-05-01T00:00:00.000", Tz::Asia__Kolkata);
        assert_eq!(kolkata, Some(utc("2026-04-30T18:30:00Z")));
        assert_eq!(
            parse_local("2026-05-01T00:00:00", Tz::UTC),
            Some(utc("2026-05-01T00:00:00Z"))
        );
        assert_eq!(
            parse_local("2026-05-01T00:00:00.5", Tz::UTC),
            Some(utc("2026-05-01T00:00:00.500Z"))
        );
        for bad in [
            "2026-05-01",
            "2026-05-01T00:00:00Z",
            "2026-05-01 00:00:00",
            "soon",
        ] {
            assert_eq!(parse_local(bad, Tz::UTC), None, "{bad}");
        }
    }

    #[test]
    fn ambiguous_takes_earliest_and_gap_takes_its_end() {
        let ny = Tz::America__New_York;
        assert_eq!(
            parse_local("2026-11-01T01:30:00.000", ny),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            parse_local("2026-03-08T02:30:00.000", ny),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // Santiago skips local midnight; Lord Howe jumps by half an hour.
        let santiago = parse_local("2026-09-06T00:00:00.000", Tz::America__Santiago);
        assert_eq!(santiago, Some(utc("2026-09-06T04:00:00Z")));
        let howe = parse_local("2026-10-04T02:10:00.000", Tz::Australia__Lord_Howe);
        assert_eq!(howe, Some(utc("2026-10-03T15:30:00Z")));
    }
}
