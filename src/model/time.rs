//! Time as the job speaks it: durations and dates from the command line, the API's timestamp
//! form, and the local calendar every window boundary is cut on.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// First instant of a local calendar date.
///
/// Local midnight may not exist (a DST change at midnight, as in America/Santiago) or may happen
/// twice; we take the first instant whose local date is `date`.
pub fn start_of_day(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_time(NaiveTime::MIN);
    // A gap is at most a day long (Pacific/Apia skipped 2011-12-30 entirely).
    for _ in 0..=(2 * 24 * 60) {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    // Unreachable for real zone data; fall back to reading the date as UTC.
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// The local date an instant falls on.
pub fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// Reads `500ms`, `90s`, `15m`, `6h`, `1d` or `2w`. A day here is 24 hours; windows reinterpret whole
/// days as local calendar days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration '{text}' needs a unit: ms, s, m, h, d or w (e.g. 6h)"))?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == std::num::IntErrorKind::PosOverflow {
            format!("duration '{text}' is too long")
        } else {
            format!("duration '{text}' must start with a whole number (e.g. 6h)")
        }
    })?;
    let d = match unit {
        "ms" => Duration::try_milliseconds(n),
        "s" => Duration::try_seconds(n),
        "m" | "min" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => {
            return Err(format!(
                "duration '{text}' has unknown unit '{unit}': use ms, s, m, h, d or w"
            ))
        }
    }
    .ok_or_else(|| format!("duration '{text}' is too long"))?;
    if d <= Duration::zero() {
        return Err(format!("duration '{text}' must be greater than zero"));
    }
    Ok(d)
}

/// A length in the largest unit that states it exactly: `10ms`, `60s`, `365d`.
pub fn human(d: Duration) -> String {
    let ms = d.num_milliseconds();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Reads a date (`2026-03-01`, local midnight), a local date-time (`2026-03-01T06:00[:00[.000]]`)
/// in `tz`, or an RFC 3339 instant with an offset (`2026-03-01T06:00:00Z`).
pub fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(start_of_day(tz, date));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return local_to_utc(tz, local);
        }
    }
    Err(format!(
        "'{text}' is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (in --timezone) or RFC 3339"
    ))
}

fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    use chrono::TimeZone;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        chrono::LocalResult::None => Err(format!(
            "'{local}' does not exist in {tz} (skipped by a DST change)"
        )),
    }
}

/// Formats an instant the way the API reads `start_timestamp`: UTC, three fractional digits,
/// no offset.
pub fn api_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Midnight of 2000-01-01 UTC: the earliest `--since` or `--until`, and the earliest instant a
/// plan starts at. Linkrunner holds nothing older; a campaign whose `created_at` says otherwise
/// is read from here.
pub fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("valid date")
        .and_time(NaiveTime::MIN)
        .and_utc()
}

/// Midnight of 2020-01-01 UTC: the floor used when a campaign has no readable `created_at`.
pub fn fallback_origin() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2020, 1, 1)
        .expect("valid date")
        .and_time(NaiveTime::MIN)
        .and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("6h").unwrap(), Duration::hours(6));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        assert!(parse_duration("0h")
            .unwrap_err()
            .contains("greater than zero"));
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("6").unwrap_err().contains("unit"));
        assert!(parse_duration("6y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999w").is_err());
        assert!(parse_duration("99999999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn human_lengths() {
        assert_eq!(human(Duration::milliseconds(10)), "10ms");
        assert_eq!(human(Duration::milliseconds(1500)), "1500ms");
        assert_eq!(human(Duration::seconds(90)), "90s");
        assert_eq!(human(Duration::hours(1)), "1h");
    }

    #[test]
    fn instants_read_in_the_zone() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let t = parse_instant("2026-03-01", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-02-28T18:30:00+00:00");
        let t = parse_instant("2026-03-01T06:00", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T00:30:00+00:00");
        let t = parse_instant("2026-03-01T06:00:00Z", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T06:00:00+00:00");
        assert!(parse_instant("yesterday", tz)
            .unwrap_err()
            .contains("not a date"));
        let ny: Tz = "America/New_York".parse().unwrap();
        assert!(parse_instant("2026-03-08T02:30", ny)
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn api_timestamps_have_millis_and_no_offset() {
        let t = DateTime::parse_from_rfc3339("2026-02-01T09:27:44.061Z").unwrap();
        assert_eq!(
            api_timestamp(t.with_timezone(&Utc)),
            "2026-02-01T09:27:44.061"
        );
    }
}
