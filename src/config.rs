//! Settings checked before any request is sent or any row is written.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::api::ClientSettings;
use crate::cli::{DbArgs, SyncArgs};
use crate::model::lookup::LookupSource;
use crate::model::personal::Protection;
use crate::model::time::{local_date, parse_instant};
use crate::model::window::{self, WindowLen};
use crate::output::secrets;
use crate::{bounds, db};

/// A validated `sync` invocation.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub api: ClientSettings,
    /// Where the project's tables live (`--schema`).
    pub schema: db::Schema,
    pub timezone: Tz,
    pub window: WindowLen,
    pub lookback: Duration,
    /// Longest a campaign with an unchanged counter goes without being read.
    pub full_scan_every: Duration,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub campaigns: Vec<String>,
    pub concurrency: usize,
    /// Bytes of rows held at once (see [`crate::api::budget`]).
    pub memory_budget: usize,
    pub rescan: bool,
    pub progress: bool,
    /// Rows per page asked of the API.
    pub page_size: u32,
    /// Most pages one transaction carries before a range is split.
    pub pages_per_scan: u64,
    pub metrics_file: Option<std::path::PathBuf>,
    pub pushgateway: Option<Url>,
    /// Attribution look-ups (`--attribution-details`), when asked for.
    pub lookups: Option<LookupSettings>,
    /// Most of the stored live campaigns one list may mark deleted; None accepts any
    /// (`--accept-deletions`).
    pub max_deleted_share: Option<f64>,
    /// What happens to personal data at the door (`--personal-data`).
    pub personal: Protection,
    /// Rewrite what is stored when `personal` is stricter than what it was stored under.
    pub rewrite_personal_data: bool,
    /// The Reporting API (`--reporting`), when asked for.
    pub reporting: Option<ReportingSettings>,
    /// How long look-ups go on after the signup sync's reads end (`--lookup-time`).
    pub lookup_time: std::time::Duration,
    /// How long reporting goes on after it starts (`--reporting-time`).
    pub reporting_time: std::time::Duration,
}

/// What `--reporting` reads, and how fast.
#[derive(Clone, Debug)]
pub struct ReportingSettings {
    /// The project's timezone, whose local days the API's days are.
    pub timezone: Tz,
    /// The first day wanted (`--since`); else the first campaign's creation day.
    pub since: Option<NaiveDate>,
    /// The last day wanted (the day before `--until`); else today.
    pub last: Option<NaiveDate>,
    /// `user_acquisition`, and `retargeting` when asked for.
    pub views: Vec<&'static str>,
    /// Requests a minute.
    pub rpm: f64,
    /// Most requests a run makes.
    pub max_requests: u32,
    /// Days before today read again.
    pub lookback_days: u32,
    /// How long a recent day's numbers stand before they are read again.
    pub refresh: Duration,
}

impl ReportingSettings {
    /// The time between two requests.
    pub fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(60.0 / self.rpm)
    }
}

/// What `--attribution-details` looks up, and how much of it per run.
#[derive(Clone, Debug)]
pub struct LookupSettings {
    /// Columns of the app's own user ids (`--lookup-from`).
    pub sources: Vec<LookupSource>,
    /// Most look-ups per run.
    pub max: u64,
}

impl SyncConfig {
    /// The settings `sync` runs with when no flag says otherwise (a unit test holds this to the
    /// flags' own defaults), for the demo and the tests to start from.
    pub fn with_defaults(api: ClientSettings, timezone: Tz) -> SyncConfig {
        SyncConfig {
            api,
            schema: db::Schema::default(),
            timezone,
            window: WindowLen::Days(1),
            lookback: Duration::days(2),
            full_scan_every: Duration::hours(6),
            since: None,
            until: None,
            campaigns: Vec::new(),
            concurrency: 32,
            memory_budget: 8 << 20,
            rescan: false,
            progress: true,
            page_size: 1000,
            pages_per_scan: 20,
            metrics_file: None,
            pushgateway: None,
            lookups: None,
            max_deleted_share: Some(0.5),
            personal: Protection::default(),
            rewrite_personal_data: false,
            reporting: None,
            lookup_time: std::time::Duration::from_secs(120),
            reporting_time: std::time::Duration::from_secs(300),
        }
    }

    /// Settings to record in the run ledger: no secrets.
    pub fn ledger_settings(&self) -> serde_json::Value {
        serde_json::json!({
            "base_url": self.api.base_url.as_str(),
            "schema": self.schema.name(),
            "timezone": self.timezone.name(),
            "window": format!("{:?}", self.window),
            "lookback_seconds": self.lookback.num_seconds(),
            "full_scan_every_seconds": self.full_scan_every.num_seconds(),
            "since": self.since,
            "until": self.until,
            "campaigns": self.campaigns,
            "rps": self.api.rps,
            "concurrency": self.concurrency,
            "memory_budget_mib": self.memory_budget >> 20,
            "rescan": self.rescan,
            "max_deleted_share": self.max_deleted_share,
            "personal_data": {"mode": self.personal.mode, "keys": self.personal.keys},
            "attribution_details": self.lookups.as_ref().map(|l| serde_json::json!({
                "lookup_from": l.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "max_lookups": l.max,
                "lookup_time_ms": self.lookup_time.as_millis() as u64,
            })),
            "reporting": self.reporting.as_ref().map(|r| serde_json::json!({
                "timezone": r.timezone.name(),
                "since": r.since,
                "last": r.last,
                "views": r.views,
                "rpm": r.rpm,
                "max_requests": r.max_requests,
                "time_ms": self.reporting_time.as_millis() as u64,
                "lookback_days": r.lookback_days,
                "refresh_seconds": r.refresh.num_seconds(),
            })),
        })
    }
}

pub fn parse_timezone(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>().map_err(|_| {
        format!(
            "--timezone '{text}' is not an IANA timezone (e.g. UTC, Europe/Berlin, Asia/Kolkata)"
        )
    })
}

pub fn database(url: Option<&SecretString>) -> Result<db::Target, String> {
    let url = url.ok_or("DATABASE_URL is not set (or pass --database-url postgres://...)")?;
    db::connect_options(url)
}

/// The database, whose statements wait at most `--lock-timeout` for a lock another session
/// holds: then the statement fails and its transaction rolls back.
pub fn waiting_database(args: &DbArgs, lock_timeout: Duration) -> Result<db::Target, String> {
    Ok(database(args.database_url.as_ref())?.with(
        "lock_timeout",
        format!("{}ms", lock_timeout.num_milliseconds()),
    ))
}

/// Checks every flag; `now` bounds the dates.
pub fn sync_config(
    args: &SyncArgs,
    now: DateTime<Utc>,
) -> Result<(SyncConfig, db::Target), String> {
    let database = waiting_database(&args.db, args.lock_timeout)?;
    let schema = args.db.schema.clone();
    let api = client_settings(args)?;
    let (timezone, window, lookback) = (args.timezone, args.window, args.lookback);
    let full_scan_every = args.full_scan_every;
    let (since, until) = dates(args, timezone, now)?;
    check_windows(args, window, lookback, since, until.unwrap_or(now))?;
    check_campaigns(args)?;
    // Bounded by their parsers to an hour at most, so always a std duration.
    let lookup_time = args.lookup_time.to_std().unwrap_or_default();
    let reporting_time = args.reporting_time.to_std().unwrap_or_default();
    let config = SyncConfig {
        api,
        schema,
        timezone,
        window,
        lookback,
        full_scan_every,
        since,
        until,
        campaigns: args.campaigns.clone(),
        concurrency: args.concurrency,
        memory_budget: (args.memory_budget_mib as usize) << 20,
        rescan: args.rescan,
        progress: !args.no_progress,
        page_size: args.page_size,
        pages_per_scan: args.pages_per_scan,
        metrics_file: args.metrics_file.clone(),
        pushgateway: args.pushgateway.as_deref().map(pushgateway).transpose()?,
        lookups: lookups(args)?,
        personal: Protection::new(
            args.personal_data,
            args.personal_data_keys
                .iter()
                .map(|k| k.trim().to_owned())
                .collect(),
            args.pii_key.clone(),
        )?,
        rewrite_personal_data: args.rewrite_personal_data,
        reporting: reporting(args)?,
        max_deleted_share: (!args.accept_deletions).then_some(args.max_deleted_share),
        lookup_time,
        reporting_time,
    };
    Ok((config, database))
}

fn lookups(args: &SyncArgs) -> Result<Option<LookupSettings>, String> {
    if !args.attribution_details {
        return match args.lookup_from.first() {
            Some(_) => Err("--lookup-from needs --attribution-details".into()),
            None => Ok(None),
        };
    }
    let max = args.max_lookups;
    let sources = args
        .lookup_from
        .iter()
        .map(|s| LookupSource::parse(s))
        .collect::<Result<_, _>>()?;
    Ok(Some(LookupSettings { sources, max }))
}

/// `--reporting` and its flags; the project's timezone is required with it.
fn reporting(args: &SyncArgs) -> Result<Option<ReportingSettings>, String> {
    if !args.reporting {
        return match (args.reporting_retargeting, &args.reporting_timezone) {
            (true, _) => Err("--reporting-retargeting needs --reporting".into()),
            (_, Some(_)) => Err(
                "--reporting-timezone (LINKRUNNER_REPORTING_TIMEZONE) needs --reporting; \
                 without it the Reporting API is not read"
                    .into(),
            ),
            (false, None) => Ok(None),
        };
    }
    let timezone = args.reporting_timezone.ok_or(
        "--reporting needs --reporting-timezone: the project's timezone as set in the Linkrunner \
         dashboard (e.g. Asia/Kolkata); the Reporting API's days are its local days",
    )?;
    let (rpm, max_requests) = (args.reporting_rpm, args.reporting_max_requests);
    let (lookback, refresh) = (args.reporting_lookback, args.reporting_refresh);
    let since = args
        .since
        .as_deref()
        .map(|text| project_day("--since", text, timezone, |day| day, |t| t))
        .transpose()?;
    // `--until` is exclusive: a date's own day is not wanted; the day an instant falls in is,
    // when the instant is after its midnight.
    let last = args
        .until
        .as_deref()
        .map(|text| {
            project_day(
                "--until",
                text,
                timezone,
                |day| day.pred_opt().unwrap_or(day),
                |t| t - Duration::milliseconds(1),
            )
        })
        .transpose()?;
    let mut views = vec!["user_acquisition"];
    if args.reporting_retargeting {
        views.push("retargeting");
    }
    Ok(Some(ReportingSettings {
        timezone,
        since,
        last,
        views,
        rpm,
        max_requests,
        lookback_days: lookback.num_days() as u32,
        refresh,
    }))
}

/// The project's day a date or time flag names: a date is the project's own day (`of_date`
/// adjusts it), a time falls on the project's calendar (`of_time` adjusts it first).
fn project_day(
    flag: &str,
    text: &str,
    timezone: Tz,
    of_date: impl FnOnce(NaiveDate) -> NaiveDate,
    of_time: impl FnOnce(DateTime<Utc>) -> DateTime<Utc>,
) -> Result<NaiveDate, String> {
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(day) => Ok(of_date(day)),
        Err(_) => {
            let t = parse_instant(text, timezone).map_err(|e| format!("{flag}: {e}"))?;
            Ok(local_date(timezone, of_time(t)))
        }
    }
}

/// `--campaign`: every one names a campaign.
fn check_campaigns(args: &SyncArgs) -> Result<(), String> {
    if let Some(bad) = args.campaigns.iter().find(|c| c.trim().is_empty()) {
        return Err(format!("--campaign '{bad}' is empty"));
    }
    Ok(())
}

fn pushgateway(url: &str) -> Result<Url, String> {
    Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or(format!("--pushgateway '{url}' is not an http(s) URL"))
}

/// Shortest `LINKRUNNER_API_KEY` taken. The API does not document the server key's form; a
/// dashboard key is a long random token, and a shorter value is a mistake (a placeholder, a
/// truncated paste) that masking would also make garble ordinary words.
pub const MIN_API_KEY_BYTES: usize = 6;

/// How to talk to the API: the key, the base URL, the rate and the retries.
fn client_settings(args: &SyncArgs) -> Result<ClientSettings, String> {
    let api_key = args
        .api_key
        .clone()
        .filter(|k| !k.expose_secret().trim().is_empty())
        .ok_or("LINKRUNNER_API_KEY is not set (or pass --api-key); it is the server key from the Linkrunner dashboard")?;
    let key = api_key.expose_secret();
    if key.len() < MIN_API_KEY_BYTES {
        return Err(format!(
            "LINKRUNNER_API_KEY is too short to be a Linkrunner server key (at least \
             {MIN_API_KEY_BYTES} bytes); copy the server key from the dashboard's Data APIs \
             settings"
        ));
    }
    let base_url = base_url(&args.base_url)?;
    // A key in the URL would be logged and stored with it (the ledger keeps the base URL): as
    // written, as parsed, or with its escapes decoded; a host is compared in any case.
    let decoded = |text: &str| secrets::percent_decode(text).unwrap_or_default();
    let host = base_url.host_str().unwrap_or_default();
    if [&args.base_url, base_url.as_str()]
        .iter()
        .any(|text| text.contains(key) || decoded(text).contains(key))
        || host.contains(&key.to_lowercase())
    {
        return Err(
            "LINKRUNNER_BASE_URL holds the API key; the key goes in LINKRUNNER_API_KEY only".into(),
        );
    }
    let (timeout, retry_delay) = (args.timeout, args.retry_delay);
    Ok(ClientSettings {
        base_url,
        api_key,
        rps: args.rps,
        timeout: timeout.to_std().map_err(|_| "--timeout is out of range")?,
        max_retries: args.max_retries,
        retry_min_delay: retry_delay
            .to_std()
            .map_err(|_| "--retry-delay is out of range")?,
        retry_max_delay: std::time::Duration::from_secs(60),
    })
}

/// `--since` and `--until`, each when given.
type Dates = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `--since` and `--until`: in order, from 2000-01-01 on and not in the future.
fn dates(args: &SyncArgs, timezone: Tz, now: DateTime<Utc>) -> Result<Dates, String> {
    let read = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|s| {
                parse_instant(s, timezone)
                    .map_err(|e| format!("{flag}: {e}"))
                    .and_then(|t| bounds::instant(flag, t))
            })
            .transpose()
    };
    let since = read("--since", &args.since)?;
    let until = read("--until", &args.until)?;
    if since.is_some_and(|since| since > now && !today_for_reporting(args, now)) {
        return Err(format!(
            "--since {} is in the future",
            args.since.as_deref().unwrap_or_default().trim()
        ));
    }
    if let Some(until) = until {
        if until > now {
            return Err(format!(
                "--until {until} is in the future; leave it out to sync up to now"
            ));
        }
        if since.is_some_and(|since| until <= since) {
            return Err("--until must be after --since".into());
        }
    }
    Ok((since, until))
}

/// Whether a `--since` date has begun in `--reporting-timezone`, though not in `--timezone`:
/// the project's today can be tomorrow in the signup sync's zone, and the other way round. A
/// date is refused only when it is in the future in every zone it is read in; the stream whose
/// zone has not reached it yet reads nothing until it has.
fn today_for_reporting(args: &SyncArgs, now: DateTime<Utc>) -> bool {
    let (Some(text), Some(timezone)) = (args.since.as_deref(), args.reporting_timezone) else {
        return false;
    };
    args.reporting
        && NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .is_ok_and(|day| day <= local_date(timezone, now))
}

/// Refuses settings whose plans would hold more than [`window::MAX_WINDOWS`] windows: from
/// `--since`, or over the `--lookback` read again on every run.
fn check_windows(
    args: &SyncArgs,
    window: WindowLen,
    lookback: Duration,
    since: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
) -> Result<(), String> {
    let most = window::MAX_WINDOWS;
    if let Some(since) = since {
        let n = window::most_windows(window, since, end);
        if n > most {
            return Err(format!(
                "--since {} in windows of {} makes up to {n} windows a campaign, more than {most}: use a longer --window or a later --since",
                args.since.as_deref().unwrap_or_default(),
                args.window
            ));
        }
    }
    let n = window::most_windows(window, end - lookback, end);
    if n > most {
        return Err(format!(
            "--lookback {} in windows of {} makes up to {n} windows a campaign on every run, more than {most}: use a longer --window or a shorter --lookback",
            crate::model::time::human(args.lookback),
            args.window
        ));
    }
    Ok(())
}

/// An http(s) URL with no credentials in it (the key goes in a header, never in a URL).
pub fn base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|_| {
        format!("LINKRUNNER_BASE_URL '{text}' is not a URL (expected https://host/api/v1)")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "LINKRUNNER_BASE_URL '{text}' must be an http(s) URL with a host"
        ));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("LINKRUNNER_BASE_URL must not carry credentials, a query or a fragment; the key goes in LINKRUNNER_API_KEY".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_flags_defaults() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "linkrunner-sync",
            "sync",
            "--api-key",
            "key-1234",
            "--database-url",
            "postgres://u@h/db",
            "--base-url",
            "https://api.linkrunner.io/api/v1",
            "--timezone",
            "UTC",
        ])
        .unwrap();
        let crate::cli::Command::Sync(args) = cli.command else {
            panic!("a sync")
        };
        let (parsed, _) = sync_config(&args, Utc::now()).unwrap();
        let defaults = SyncConfig::with_defaults(parsed.api.clone(), parsed.timezone);
        assert_eq!(format!("{defaults:?}"), format!("{parsed:?}"));
    }

    fn sync_args(extra: &[&str]) -> SyncArgs {
        use clap::Parser;
        let mut argv = vec!["linkrunner-sync", "sync", "--api-key", "key-1234"];
        argv.extend(["--database-url", "postgres://u@h/db"]);
        argv.extend(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Sync(args) => *args,
            _ => panic!("a sync"),
        }
    }

    /// At 21:45 UTC it is already tomorrow in Kolkata: its today is a `--since` the project's
    /// reporting reads at once, while the signup sync waits for the day to begin in UTC.
    #[test]
    fn a_since_date_is_refused_only_when_no_zone_has_reached_it() {
        let now = "2026-12-06T21:45:00Z".parse().unwrap();
        let reporting = ["--reporting", "--reporting-timezone", "Asia/Kolkata"];
        let run = |since: &str, zone: &str, reporting: &[&str]| {
            let mut extra = vec!["--since", since, "--timezone", zone];
            extra.extend(reporting);
            sync_config(&sync_args(&extra), now).map(|(c, _)| c)
        };
        let config = run("2026-12-07", "UTC", &reporting).unwrap();
        assert_eq!(config.reporting.unwrap().since, "2026-12-07".parse().ok());
        assert_eq!(config.since, "2026-12-07T00:00:00Z".parse().ok());
        for refused in [
            run("2026-12-07", "UTC", &[]),
            run("2026-12-08", "UTC", &reporting),
            run("2026-12-07T00:00", "UTC", &reporting),
        ] {
            assert!(refused.unwrap_err().contains("in the future"));
        }
        // The other way round: today in --timezone, tomorrow in the project's zone.
        let behind = ["--reporting", "--reporting-timezone", "America/Los_Angeles"];
        let config = run("2026-12-07", "Asia/Kolkata", &behind).unwrap();
        assert_eq!(config.reporting.unwrap().since, "2026-12-07".parse().ok());
    }

    #[test]
    fn base_urls() {
        assert!(base_url("https://api.linkrunner.io/api/v1").is_ok());
        assert!(base_url("ftp://x/y").is_err());
        assert!(base_url("not a url").unwrap_err().contains("not a URL"));
        let err = base_url("https://user:hunter2@api.example/api/v1").unwrap_err();
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn timezones() {
        assert!(parse_timezone("Australia/Lord_Howe").is_ok());
        assert!(parse_timezone("Mars/Olympus")
            .unwrap_err()
            .contains("Mars/Olympus"));
    }
}
