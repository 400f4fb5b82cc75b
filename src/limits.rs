//! The range each numeric and duration flag accepts. Everything is checked before the first
//! request or statement, so a value out of range is one line and exit code 2, never an overflow
//! deep inside a run; the help texts in [`crate::cli`] state the same bounds.

use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, Utc};

use crate::model::time::{earliest, human, parse_duration};

/// `--rps`: one request every 100 seconds up to the API's own ceiling, and more.
pub const RPS: RangeInclusive<f64> = 0.01..=10_000.0;
pub const CONCURRENCY: RangeInclusive<usize> = 1..=64;
pub const MEMORY_BUDGET_MIB: RangeInclusive<u32> = 1..=4096;
pub const PAGES_PER_SCAN: RangeInclusive<u64> = 1..=1000;
pub const MAX_LOOKUPS: RangeInclusive<u64> = 1..=1_000_000;
/// `--reporting-rpm`: the Reporting API allows 1 a minute; more for a server that allows more.
pub const REPORTING_RPM: RangeInclusive<f64> = 0.01..=6000.0;
pub const REPORTING_MAX_REQUESTS: RangeInclusive<u32> = 1..=100_000;
pub const DELETED_SHARE: RangeInclusive<f64> = 0.0..=1.0;
pub const MAX_RETRIES: RangeInclusive<usize> = 0..=100;
/// `status --runs`.
pub const RUNS: RangeInclusive<i64> = 0..=1000;
/// `demo --campaigns` and `demo --users`: what the simulator builds in memory.
pub const DEMO_CAMPAIGNS: RangeInclusive<usize> = 1..=10_000;
pub const DEMO_USERS: RangeInclusive<usize> = 0..=1_000_000;

/// Bounds of a duration flag.
pub struct Span {
    pub min: Duration,
    pub max: Duration,
}

/// `--timeout`: a response's headers, and again its body.
pub const TIMEOUT: Span = Span {
    min: Duration::milliseconds(10),
    max: Duration::hours(1),
};
/// `--retry-delay`: the first delay, which doubles up to 60s.
pub const RETRY_DELAY: Span = Span {
    min: Duration::milliseconds(1),
    max: Duration::seconds(60),
};
/// `--lookback`, re-read on every run.
pub const LOOKBACK: Span = Span {
    min: Duration::seconds(1),
    max: Duration::days(365),
};
/// `--full-scan-every`.
pub const FULL_SCAN_EVERY: Span = Span {
    min: Duration::seconds(1),
    max: Duration::days(365),
};
/// `--lock-timeout`: the longest a statement waits for another session's lock.
pub const LOCK_TIMEOUT: Span = Span {
    min: Duration::milliseconds(100),
    max: Duration::hours(1),
};
/// `--reporting-lookback`, in whole days.
pub const REPORTING_LOOKBACK: Span = Span {
    min: Duration::days(1),
    max: Duration::days(90),
};
/// `--reporting-refresh`.
pub const REPORTING_REFRESH: Span = Span {
    min: Duration::minutes(1),
    max: Duration::days(7),
};
/// `--lookup-time`: how long look-ups go on after the signup sync's reads end.
pub const LOOKUP_TIME: Span = Span {
    min: Duration::milliseconds(100),
    max: Duration::hours(1),
};
/// `--reporting-time`: how long reporting goes on after it starts.
pub const REPORTING_TIME: Span = Span {
    min: Duration::milliseconds(100),
    max: Duration::hours(1),
};
/// `status --max-lag`.
pub const MAX_LAG: Span = Span {
    min: Duration::seconds(1),
    max: Duration::days(365),
};

/// Reads a duration flag and checks it against its bounds.
pub fn duration(flag: &str, text: &str, span: &Span) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| format!("{flag}: {e}"))?;
    if d < span.min || d > span.max {
        return Err(format!(
            "{flag} {} must be between {} and {}",
            text.trim(),
            human(span.min),
            human(span.max)
        ));
    }
    Ok(d)
}

/// Checks a number flag against its bounds.
pub fn number<T>(flag: &str, value: T, range: RangeInclusive<T>) -> Result<T, String>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        return Ok(value);
    }
    Err(format!(
        "{flag} {value} must be between {} and {}",
        range.start(),
        range.end()
    ))
}

/// `--rps`, which must also be a number: NaN and infinity are refused with the rest.
pub fn rps(value: f64) -> Result<f64, String> {
    rate("--rps", value, RPS)
}

/// A rate flag, which must also be a number: NaN and infinity are refused with the rest.
pub fn rate(flag: &str, value: f64, range: RangeInclusive<f64>) -> Result<f64, String> {
    if value.is_finite() && range.contains(&value) {
        return Ok(value);
    }
    // Tiny and huge values in exponent form, so 1e-20 reads as typed.
    let shown = if value != 0.0 && !(1e-3..1e15).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        format!("{value}")
    };
    Err(format!(
        "{flag} {shown} must be a number between {} and {}",
        range.start(),
        range.end()
    ))
}

/// `--since` and `--until` no earlier than 2000-01-01 ([`earliest`]).
pub fn instant(flag: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if t < earliest() {
        return Err(format!(
            "{flag} {} is before 2000-01-01; Linkrunner holds nothing that old",
            t.format("%Y-%m-%d")
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_out_of_bounds_name_the_flag_and_the_bounds() {
        assert_eq!(
            duration("--lookback", "999999999w", &LOOKBACK).unwrap_err(),
            "--lookback 999999999w must be between 1s and 365d"
        );
        assert!(duration("--lookback", "9223372036854775807ms", &LOOKBACK).is_err());
        assert!(duration("--timeout", "1ms", &TIMEOUT)
            .unwrap_err()
            .contains("between 10ms and 1h"));
        assert_eq!(
            duration("--lookback", "2d", &LOOKBACK).unwrap(),
            Duration::days(2)
        );
    }

    #[test]
    fn rates_must_be_finite_and_in_range() {
        for bad in [1e-20, 0.0, -1.0, f64::NAN, f64::INFINITY, 10_001.0] {
            assert!(rps(bad).unwrap_err().starts_with("--rps"), "{bad}");
        }
        assert_eq!(rps(0.01).unwrap(), 0.01);
    }

    #[test]
    fn numbers_and_dates() {
        assert!(number("--concurrency", 0, CONCURRENCY).is_err());
        assert_eq!(number("--runs", 5, RUNS).unwrap(), 5);
        assert!(number("--runs", -1, RUNS)
            .unwrap_err()
            .contains("0 and 1000"));
        let old = chrono::NaiveDate::from_ymd_opt(1, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert!(instant("--since", old).unwrap_err().contains("0001-01-01"));
    }
}
