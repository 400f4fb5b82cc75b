//! The values each flag accepts, written once: clap parses every bounded flag with the type
//! here (so a value out of range is one line naming the flag, the value and the range, and exit
//! code 2, before anything runs), `--help` states the same ranges ([`BOUNDS`]), and the docs'
//! table of bounds is made from them.

use std::ffi::OsStr;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

use crate::model::schema::Schema;
use crate::model::time::{earliest, human, parse_duration};
use crate::model::window::WindowLen;

/// Bounds of a duration flag.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub min: Duration,
    pub max: Duration,
}

/// Bounds of a whole number flag.
#[derive(Clone, Debug)]
pub struct Count<T>(pub RangeInclusive<T>);

/// Bounds of a rate: a finite number.
#[derive(Clone, Debug)]
pub struct Rate(pub RangeInclusive<f64>);

/// A duration in whole days.
#[derive(Clone, Copy, Debug)]
pub struct Days(pub Span);

/// An IANA time zone.
#[derive(Clone, Copy, Debug)]
pub struct Zone;

/// A schema name (`--schema`): a plain identifier none of Postgres's own.
#[derive(Clone, Copy, Debug)]
pub struct SchemaName;

/// A window length: part of a day, or whole local days.
#[derive(Clone, Copy, Debug)]
pub struct Window;

/// What a flag with a rule of its own accepts, in words: its parser is elsewhere.
#[derive(Clone, Copy, Debug)]
pub struct Rule(pub &'static str);

impl Accepts for Rule {
    fn accepted(&self) -> String {
        self.0.into()
    }
}

/// `forget --file`: the largest file read, and its most lines.
pub const FORGET_FILE_BYTES: u64 = 64 << 20;
pub const FORGET_FILE_LINES: usize = 1_000_000;

/// `forget --file`.
pub struct ForgetFile;

impl Accepts for ForgetFile {
    fn accepted(&self) -> String {
        format!(
            "a regular file, at most {} MiB and {FORGET_FILE_LINES} lines",
            FORGET_FILE_BYTES >> 20
        )
    }
}

const SINCE: Rule = Rule(
    "2000-01-01 or later, not after today in every zone the run \
     reads (--timezone, and --reporting-timezone with --reporting): a stream whose zone has not \
     reached it yet reads nothing until it has",
);

const UNTIL: Rule = Rule("after --since, 2000-01-01 or later, not in the future");

const LOOKUP_FROM: Rule = Rule(
    "three names joined by dots, each 1 to 63 bytes, the schema not one of Postgres's own \
     (pg_*, information_schema: their values would be sent to Linkrunner); the column must \
     exist and be readable (checked before any request)",
);

/// What a flag accepts, as `--help` and the docs say it.
pub trait Accepts: Sync {
    fn accepted(&self) -> String;
}

impl Accepts for Span {
    fn accepted(&self) -> String {
        format!("{} to {}", human(self.min), human(self.max))
    }
}

impl<T: Display + Sync> Accepts for Count<T> {
    fn accepted(&self) -> String {
        format!("{} to {}", self.0.start(), self.0.end())
    }
}

impl Accepts for Rate {
    fn accepted(&self) -> String {
        format!(
            "{} to {} (NaN and infinity refused)",
            self.0.start(),
            self.0.end()
        )
    }
}

impl Accepts for Days {
    fn accepted(&self) -> String {
        format!("whole days, {}", self.0.accepted())
    }
}

impl Accepts for Window {
    fn accepted(&self) -> String {
        format!(
            "{} to {}d: shorter than a day (6h, 30m, at least {}), or whole days (1d, 7d)",
            human(WindowLen::MIN),
            WindowLen::MAX_DAYS,
            human(WindowLen::MIN)
        )
    }
}

impl Accepts for SchemaName {
    fn accepted(&self) -> String {
        "lower-case letters, digits and _, starting with a letter, at most 63 bytes; not public, \
         information_schema or pg_*"
            .into()
    }
}

impl Accepts for Zone {
    fn accepted(&self) -> String {
        "an IANA name (UTC, Europe/Berlin, Asia/Kolkata)".into()
    }
}

/// `--rps`: one request every 100 seconds up to the API's own ceiling, and more.
pub const RPS: Rate = Rate(0.01..=10_000.0);
pub const CONCURRENCY: Count<usize> = Count(1..=64);
pub const MEMORY_BUDGET_MIB: Count<u32> = Count(1..=4096);
/// `--page-size`: what the API serves.
pub const PAGE_SIZE: Count<u32> = Count(1..=crate::api::client::MAX_LIMIT);
pub const PAGES_PER_SCAN: Count<u64> = Count(1..=1000);
pub const MAX_LOOKUPS: Count<u64> = Count(1..=1_000_000);
/// `--reporting-rpm`: the Reporting API allows 1 a minute; more for a server that allows more.
pub const REPORTING_RPM: Rate = Rate(0.01..=6000.0);
pub const REPORTING_MAX_REQUESTS: Count<u32> = Count(1..=100_000);
pub const DELETED_SHARE: Rate = Rate(0.0..=1.0);
pub const MAX_RETRIES: Count<usize> = Count(0..=100);
/// `status --runs`.
pub const RUNS: Count<i64> = Count(0..=1000);
/// `demo --campaigns` and `demo --users`: what the simulator builds in memory.
pub const DEMO_CAMPAIGNS: Count<usize> = Count(1..=10_000);
pub const DEMO_USERS: Count<usize> = Count(0..=1_000_000);
/// `receive --spool-max-mib`: from a few deliveries to a disk's worth.
pub const SPOOL_MAX_MIB: Count<u64> = Count(1..=1_048_576);

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
pub const REPORTING_LOOKBACK: Days = Days(Span {
    min: Duration::days(1),
    max: Duration::days(90),
});
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

/// The subcommand of a [`BOUNDS`] entry that holds for every subcommand with the flag.
pub const EVERY: &str = "*";

/// Every bounded flag of every subcommand, with what it accepts: `--help` appends it to the
/// flag's text, and the docs' table of bounds lists it, in this order.
pub static BOUNDS: &[(&str, &str, &dyn Accepts)] = &[
    (EVERY, "schema", &SchemaName),
    ("sync", "rps", &RPS),
    ("sync", "concurrency", &CONCURRENCY),
    ("sync", "memory-budget-mib", &MEMORY_BUDGET_MIB),
    ("sync", "window", &Window),
    ("sync", "lookback", &LOOKBACK),
    ("sync", "full-scan-every", &FULL_SCAN_EVERY),
    ("sync", "timeout", &TIMEOUT),
    ("sync", "lock-timeout", &LOCK_TIMEOUT),
    ("sync", "retry-delay", &RETRY_DELAY),
    ("sync", "max-retries", &MAX_RETRIES),
    ("sync", "page-size", &PAGE_SIZE),
    ("sync", "pages-per-scan", &PAGES_PER_SCAN),
    ("sync", "max-lookups", &MAX_LOOKUPS),
    ("sync", "lookup-time", &LOOKUP_TIME),
    ("sync", "max-deleted-share", &DELETED_SHARE),
    ("sync", "timezone", &Zone),
    ("sync", "reporting-rpm", &REPORTING_RPM),
    ("sync", "reporting-max-requests", &REPORTING_MAX_REQUESTS),
    ("sync", "reporting-time", &REPORTING_TIME),
    ("sync", "reporting-lookback", &REPORTING_LOOKBACK),
    ("sync", "reporting-refresh", &REPORTING_REFRESH),
    ("sync", "reporting-timezone", &Zone),
    ("sync", "lookup-from", &LOOKUP_FROM),
    ("sync", "since", &SINCE),
    ("sync", "until", &UNTIL),
    ("forget", "file", &ForgetFile),
    ("forget", "lock-timeout", &LOCK_TIMEOUT),
    ("status", "lock-timeout", &LOCK_TIMEOUT),
    ("status", "max-lag", &MAX_LAG),
    ("status", "runs", &RUNS),
    ("demo", "rps", &RPS),
    ("demo", "campaigns", &DEMO_CAMPAIGNS),
    ("demo", "users", &DEMO_USERS),
    ("receive", "spool-max-mib", &SPOOL_MAX_MIB),
    ("demo", "timezone", &Zone),
];

/// A value refused, as one line.
fn refused(line: String) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, format!("{line}\n"))
}

/// The flag's name as the user typed it, and its value as text.
fn flag_and_text<'v>(
    arg: Option<&clap::Arg>,
    value: &'v OsStr,
) -> Result<(String, &'v str), clap::Error> {
    let flag = arg
        .and_then(|a| a.get_long())
        .map_or("a value".to_owned(), |l| format!("--{l}"));
    let text = value
        .to_str()
        .ok_or_else(|| refused(format!("{flag} is not UTF-8")))?;
    Ok((flag, text))
}

/// A clap value parser for `$ty` from a check of the flag's name and text; a refusal is the
/// check's one line.
macro_rules! parser {
    ($ty:ty => $value:ty, |$this:ident, $flag:ident, $text:ident| $check:expr) => {
        impl TypedValueParser for $ty {
            type Value = $value;
            fn parse_ref(
                &self,
                _: &clap::Command,
                arg: Option<&clap::Arg>,
                value: &OsStr,
            ) -> Result<$value, clap::Error> {
                let ($flag, $text) = flag_and_text(arg, value)?;
                let $this = self;
                // A closure, so that `?` and `return` in the check end the check.
                let check = || -> Result<$value, String> { $check };
                let checked = check();
                checked.map_err(refused)
            }
        }
    };
}

parser!(Span => Duration, |span, flag, text| duration(&flag, text, span));

parser!(Days => Duration, |days, flag, text| {
    let d = duration(&flag, text, &days.0)?;
    if d.num_seconds() % 86_400 != 0 {
        return Err(format!("{flag} {} must be whole days (e.g. 7d)", text.trim()));
    }
    Ok(d)
});

impl<T> TypedValueParser for Count<T>
where
    T: FromStr + PartialOrd + Display + Clone + Send + Sync + 'static,
{
    type Value = T;
    fn parse_ref(
        &self,
        _: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let (flag, text) = flag_and_text(arg, value)?;
        let n = text.trim().parse::<T>().map_err(|_| {
            refused(format!(
                "invalid value '{text}' for {flag}: a whole number from {} to {}",
                self.0.start(),
                self.0.end()
            ))
        })?;
        number(&flag, n, self.0.clone()).map_err(refused)
    }
}

parser!(Rate => f64, |bounds, flag, text| {
    let n = text.trim().parse::<f64>().map_err(|_| {
        format!(
            "invalid value '{text}' for {flag}: a number from {} to {}",
            bounds.0.start(),
            bounds.0.end()
        )
    })?;
    rate(&flag, n, bounds.0.clone())
});

parser!(Zone => Tz, |_zone, flag, text| text.parse::<Tz>().map_err(|_| {
    format!("{flag} '{text}' is not an IANA timezone (e.g. UTC, Europe/Berlin, Asia/Kolkata)")
}));

parser!(SchemaName => Schema, |_name, _flag, text| Schema::parse(text));

parser!(Window => WindowLen, |_window, flag, text| {
    WindowLen::parse(text).map_err(|e| format!("{flag}: {e}"))
});

/// Reads a duration flag and checks it against its bounds.
fn duration(flag: &str, text: &str, span: &Span) -> Result<Duration, String> {
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
fn number<T>(flag: &str, value: T, range: RangeInclusive<T>) -> Result<T, String>
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

/// A rate flag, which must also be a number: NaN and infinity are refused with the rest.
fn rate(flag: &str, value: f64, range: RangeInclusive<f64>) -> Result<f64, String> {
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
            assert!(
                rate("--rps", bad, RPS.0).unwrap_err().starts_with("--rps"),
                "{bad}"
            );
        }
        assert_eq!(rate("--rps", 0.01, RPS.0).unwrap(), 0.01);
    }

    #[test]
    fn numbers_and_dates() {
        assert!(number("--concurrency", 0, CONCURRENCY.0).is_err());
        assert_eq!(number("--runs", 5, RUNS.0).unwrap(), 5);
        assert!(number("--runs", -1, RUNS.0)
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
