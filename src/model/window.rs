//! Time windows cut on a timezone's local calendar.
//!
//! A window of whole days runs from one local midnight to another, so a local day is 23 or 25
//! hours long across a DST change. Sub-day windows cut each local day into chunks measured from
//! its midnight, the last chunk ending at the next midnight. Because every boundary is a function
//! of the local date alone, consecutive windows always meet: the plan has no gap and no overlap.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::model::time::{human, local_date, parse_duration, start_of_day};

/// A half-open interval `[start, end)` of instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// How long a window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowLen {
    /// Whole local calendar days (23, 24 or 25 hours each).
    Days(u32),
    /// A fixed length shorter than a day, restarted at every local midnight.
    Within(Duration),
}

impl WindowLen {
    /// The shortest window: finer ones only multiply the windows a plan holds.
    pub const MIN: Duration = Duration::minutes(1);
    /// The longest window, in days.
    pub const MAX_DAYS: u32 = 365;

    pub fn parse(text: &str) -> Result<Self, String> {
        let d = parse_duration(text)?;
        let day = Duration::days(1);
        if d < Self::MIN {
            return Err(format!(
                "window '{text}' is shorter than the shortest window, 1m"
            ));
        }
        if d < day {
            return Ok(WindowLen::Within(d));
        }
        if d.num_milliseconds() % day.num_milliseconds() != 0 {
            return Err(format!(
                "window '{text}' must be shorter than a day or a whole number of days"
            ));
        }
        u32::try_from(d.num_days())
            .ok()
            .filter(|days| *days <= Self::MAX_DAYS)
            .map(WindowLen::Days)
            .ok_or_else(|| format!("window '{text}' is longer than the longest window, 365d"))
    }

    /// The window's nominal length (days of 24 hours).
    pub fn nominal(self) -> Duration {
        match self {
            WindowLen::Days(n) => Duration::days(i64::from(n)),
            WindowLen::Within(d) => d,
        }
    }
}

/// As written on the command line: `7d`, `6h`.
impl std::fmt::Display for WindowLen {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            WindowLen::Days(n) => write!(f, "{n}d"),
            WindowLen::Within(d) => f.write_str(&human(*d)),
        }
    }
}

/// The start of the window that contains `t`.
pub fn floor(tz: Tz, len: WindowLen, t: DateTime<Utc>) -> DateTime<Utc> {
    match len {
        WindowLen::Days(n) => start_of_day(tz, floor_date(local_date(tz, t), n)),
        WindowLen::Within(step) => {
            let day = start_of_day(tz, local_date(tz, t));
            let steps = (t - day).num_milliseconds() / step.num_milliseconds();
            day + step * steps as i32
        }
    }
}

/// The most windows one plan may hold, as [`most_windows`] counts them: a year of 6-minute
/// windows, ten years of hourly ones, a century of days. A plan takes about 50 bytes a window
/// while its campaign is read; the flags and the campaigns' ranges are checked against this
/// before any plan is made.
pub const MAX_WINDOWS: u64 = 100_000;

/// An upper bound on the windows [`plan`] makes over `[start, end)`, found without making
/// them: a local day holds at most its length over a sub-day window's, plus one window cut
/// short at its midnight, and no local day is shorter than 12 hours.
pub fn most_windows(len: WindowLen, start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    if end <= start {
        return 0;
    }
    // The plan starts at the floor of `start`, at most one window earlier.
    let span = (end - start)
        .num_milliseconds()
        .saturating_add(len.nominal().num_milliseconds());
    let half_day = Duration::hours(12).num_milliseconds();
    let count = match len {
        WindowLen::Days(n) => span / (half_day * i64::from(n)),
        WindowLen::Within(step) => span / step.num_milliseconds() + span / half_day,
    };
    // Two days cut at the ends, and the divisions' rounding.
    count.unsigned_abs() + 4
}

/// Windows covering `[floor(start), end)`, the last one cut short at `end`.
pub fn plan(tz: Tz, len: WindowLen, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut cursor = floor(tz, len, start);
    while cursor < end {
        let next = next_boundary(tz, len, cursor).min(end);
        windows.push(Window {
            start: cursor,
            end: next,
        });
        cursor = next;
    }
    windows
}

/// The boundary after `t`, where `t` is itself a boundary.
fn next_boundary(tz: Tz, len: WindowLen, t: DateTime<Utc>) -> DateTime<Utc> {
    let date = local_date(tz, t);
    let mut next_day = date.succ_opt().unwrap_or(date);
    // Skipped dates (a day removed from the calendar) start where the following day starts.
    while start_of_day(tz, next_day) <= t {
        next_day = next_day.succ_opt().unwrap_or(next_day);
    }
    match len {
        WindowLen::Days(n) => {
            let target = floor_date(date, n) + Duration::days(i64::from(n));
            start_of_day(tz, target.max(next_day))
        }
        WindowLen::Within(step) => (t + step).min(start_of_day(tz, next_day)),
    }
}

/// Aligns a date down to a multiple of `n` days since 1970-01-01, so windows of several days
/// fall on the same dates whatever day a run starts on.
fn floor_date(date: NaiveDate, n: u32) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let days = (date - epoch).num_days();
    epoch + Duration::days(days - days.rem_euclid(i64::from(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn window_lengths() {
        assert_eq!(WindowLen::parse("1d").unwrap(), WindowLen::Days(1));
        assert_eq!(WindowLen::parse("48h").unwrap(), WindowLen::Days(2));
        assert_eq!(
            WindowLen::parse("6h").unwrap(),
            WindowLen::Within(Duration::hours(6))
        );
        assert!(WindowLen::parse("36h").is_err());
        assert!(WindowLen::parse("1ms").unwrap_err().contains("shortest"));
        assert!(WindowLen::parse("59s").is_err());
        assert_eq!(
            WindowLen::parse("1m").unwrap(),
            WindowLen::Within(Duration::minutes(1))
        );
        assert_eq!(WindowLen::parse("365d").unwrap(), WindowLen::Days(365));
        assert!(WindowLen::parse("366d").unwrap_err().contains("longest"));
        assert!(WindowLen::parse("613566756w")
            .unwrap_err()
            .contains("longest"));
    }

    fn day() -> WindowLen {
        WindowLen::Days(1)
    }

    #[test]
    fn new_york_days_are_23_and_25_hours_across_dst() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let w = plan(
            tz,
            day(),
            utc("2026-03-08T05:00:00Z"),
            utc("2026-03-09T04:00:00Z"),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].end - w[0].start, Duration::hours(23));
        let w = plan(
            tz,
            day(),
            utc("2026-11-01T04:00:00Z"),
            utc("2026-11-02T05:00:00Z"),
        );
        assert_eq!(w[0].end - w[0].start, Duration::hours(25));
    }

    #[test]
    fn kolkata_midnight_is_18_30_utc() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let w = plan(
            tz,
            day(),
            utc("2026-05-01T12:00:00Z"),
            utc("2026-05-02T00:00:00Z"),
        );
        assert_eq!(w[0].start, utc("2026-04-30T18:30:00Z"));
        assert_eq!(w[0].end, utc("2026-05-01T18:30:00Z"));
    }

    #[test]
    fn lord_howe_half_hour_dst_day_is_23_5_hours() {
        let tz: Tz = "Australia/Lord_Howe".parse().unwrap();
        // DST starts 2026-10-04 at 02:00 local, clocks go forward 30 minutes.
        let start = start_of_day(tz, NaiveDate::from_ymd_opt(2026, 10, 4).unwrap());
        let w = plan(tz, day(), start, start + Duration::hours(30));
        assert_eq!(w[0].end - w[0].start, Duration::minutes(23 * 60 + 30));
    }

    #[test]
    fn santiago_missing_midnight_starts_the_day_at_one() {
        // Chile moves clocks from 24:00 to 01:00 on 2026-09-06.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let start = start_of_day(tz, date);
        assert_eq!(
            start.with_timezone(&tz).format("%H:%M").to_string(),
            "01:00"
        );
        assert_eq!(local_date(tz, start), date);
    }

    #[test]
    fn sub_day_windows_restart_at_each_midnight() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let len = WindowLen::Within(Duration::hours(7));
        let start = utc("2026-03-08T05:00:00Z");
        let w = plan(tz, len, start, start + Duration::hours(23));
        let lengths: Vec<i64> = w.iter().map(|w| (w.end - w.start).num_hours()).collect();
        assert_eq!(lengths, vec![7, 7, 7, 2]);
    }

    #[test]
    fn multi_day_windows_align_to_the_same_dates() {
        let tz: Tz = "UTC".parse().unwrap();
        let a = plan(
            tz,
            WindowLen::Days(7),
            utc("2026-01-03T00:00:00Z"),
            utc("2026-02-01T00:00:00Z"),
        );
        let b = plan(
            tz,
            WindowLen::Days(7),
            utc("2026-01-05T10:00:00Z"),
            utc("2026-02-01T00:00:00Z"),
        );
        // 2026-01-01 is 20454 days, a multiple of 7, after 1970-01-01.
        assert_eq!(a, b);
        assert_eq!(a[0].start, utc("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn samoa_skipped_day_leaves_no_gap() {
        let tz: Tz = "Pacific/Apia".parse().unwrap();
        let w = plan(
            tz,
            day(),
            utc("2011-12-28T00:00:00Z"),
            utc("2012-01-02T00:00:00Z"),
        );
        for pair in w.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(w.iter().all(|w| w.start < w.end));
    }

    #[test]
    fn the_bound_holds_on_short_dst_days_and_stays_near_the_count() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let start = utc("2026-03-01T05:00:00Z");
        let end = utc("2026-04-01T04:00:00Z");
        for len in [
            day(),
            WindowLen::Days(7),
            WindowLen::Within(Duration::minutes(7)),
            WindowLen::Within(Duration::hours(23)),
        ] {
            let made = plan(tz, len, start, end).len() as u64;
            let bound = most_windows(len, start, end);
            assert!(
                made <= bound && bound <= 2 * made + 6,
                "{len:?}: {made} {bound}"
            );
        }
        assert_eq!(most_windows(day(), end, start), 0);
    }

    fn any_zone() -> impl Strategy<Value = Tz> {
        (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
    }

    fn any_len() -> impl Strategy<Value = WindowLen> {
        prop_oneof![
            (1u32..10).prop_map(WindowLen::Days),
            (1i64..=24 * 60).prop_map(|m| WindowLen::Within(Duration::minutes(m))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn windows_never_gap_or_overlap(
            tz in any_zone(),
            len in any_len(),
            start in 0i64..2_000_000_000,
            span in 0i64..40 * 86_400,
        ) {
            let start = Utc.timestamp_opt(start, 0).unwrap();
            let end = start + Duration::seconds(span);
            let w = plan(tz, len, start, end);
            if span > 0 {
                prop_assert!(!w.is_empty());
                prop_assert!(w[0].start <= start);
                prop_assert_eq!(w.last().unwrap().end, end);
            }
            prop_assert!(w.len() as u64 <= most_windows(len, start, end));
            for pair in w.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
            }
            for x in &w {
                prop_assert!(x.start < x.end);
                // No window crosses a local midnight.
                prop_assert!(x.end <= start_of_day(tz, local_date(tz, x.start).succ_opt().unwrap()) || matches!(len, WindowLen::Days(n) if n > 1));
            }
            // Planning from any boundary reproduces the same tail.
            if w.len() > 2 {
                let again = plan(tz, len, w[1].start, end);
                prop_assert_eq!(&again[..], &w[1..]);
            }
        }
    }
}
