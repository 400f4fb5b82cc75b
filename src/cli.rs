//! The command line.

use chrono::Duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::bounds;
use crate::model::personal;
use crate::model::schema::Schema;
use crate::model::window::WindowLen;
pub use crate::output::logs::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "linkrunner-sync",
    version,
    about = "Keeps a Postgres warehouse in step with Linkrunner campaigns and attributed users."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format: text on a terminal, JSON lines otherwise (auto).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "LINKRUNNER_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// The command line as `main` reads it: each bounded flag's help ends with what it accepts, from
/// the same bounds its parser checks ([`bounds::BOUNDS`]).
pub fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for (sub, flag, accepts) in bounds::BOUNDS {
        let id = flag.replace('-', "_");
        for name in subs
            .iter()
            .filter(|name| *sub == bounds::EVERY || name == sub)
        {
            let has = cmd
                .find_subcommand(name)
                .is_some_and(|c| c.get_arguments().any(|a| a.get_id() == id.as_str()));
            if !has {
                continue;
            }
            cmd = cmd.mut_subcommand(name, |c| {
                c.mut_arg(&id, |a| {
                    let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                    a.help(format!("{help} [accepts: {}]", accepts.accepted()))
                })
            });
        }
    }
    cmd
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync campaigns and attributed users into Postgres (applies migrations first).
    Sync(Box<SyncArgs>),
    /// Apply the database migrations and exit.
    Migrate(DbArgs),
    /// Show per-campaign checkpoints and the last runs.
    Status(StatusArgs),
    /// Erase people: delete every row of theirs in the schema, and keep later runs from
    /// storing them again. Prints what it deleted per table.
    Forget(ForgetArgs),
    /// Receive Linkrunner's install and signup webhooks into Postgres: a long-running HTTP
    /// server answering POST /webhooks/linkrunner once each event is committed.
    Receive(ReceiveArgs),
    /// Run a full sync against the built-in simulator and a local Postgres, then show what landed.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Postgres URL, e.g. postgres://user@localhost/warehouse; TLS with
    /// ?sslmode=verify-full&sslrootcert=ca.crt. Directly or through a session-mode pool.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Postgres schema holding this project's tables, views, migration history and run lock:
    /// one schema per Linkrunner project (a plain lower-case identifier).
    #[arg(value_parser = bounds::SchemaName, long, default_value = "linkrunner", env = "LINKRUNNER_SCHEMA")]
    pub schema: Schema,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Linkrunner server key (Dashboard, Settings, Data APIs), at least 6 bytes. Never printed.
    #[arg(long, env = "LINKRUNNER_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,

    /// Base URL of the Linkrunner Data API.
    #[arg(
        long,
        env = "LINKRUNNER_BASE_URL",
        default_value = "https://api.linkrunner.io/api/v1"
    )]
    pub base_url: String,

    /// Backfill from this date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM in --timezone, or
    /// RFC 3339). Without it, each campaign resumes from its checkpoint, or starts at
    /// its created_at. With --reporting, also the first reporting day (a date is the project's
    /// own day).
    #[arg(long)]
    pub since: Option<String>,

    /// Sync up to this date or time (exclusive; default: now). With
    /// --reporting, the last reporting day is the one before a date, or the day of a time.
    #[arg(long)]
    pub until: Option<String>,

    /// IANA timezone whose local calendar the windows follow.
    #[arg(value_parser = bounds::Zone, long, default_value = "UTC")]
    pub timezone: chrono_tz::Tz,

    /// Window length: whole local days, or a part of a day. A campaign's range may hold at most
    /// 100000 windows.
    #[arg(value_parser = bounds::Window, long, default_value = "1d")]
    pub window: WindowLen,

    /// Re-read this much before the checkpoint on every run, for late data (s, m, h, d, w).
    #[arg(value_parser = bounds::LOOKBACK, long, default_value = "2d")]
    pub lookback: Duration,

    /// Only these campaigns (display_id; repeat the flag for several). Never marks deletions.
    #[arg(long = "campaign", value_name = "DISPLAY_ID")]
    pub campaigns: Vec<String>,

    /// Most API requests per second, over all campaigns.
    #[arg(value_parser = bounds::RPS, long, default_value = "10")]
    pub rps: f64,

    /// Most campaigns read at the same time, all under the one --rps limit. Small
    /// ranges of several campaigns are committed together.
    #[arg(value_parser = bounds::CONCURRENCY, long, default_value = "32")]
    pub concurrency: usize,

    /// MiB of attributed-user rows held at once (pages, parsed rows and rows waiting for their
    /// commit); reading waits while they fill it. The job's peak memory is about
    /// this plus 40 MiB.
    #[arg(value_parser = bounds::MEMORY_BUDGET_MIB, long, default_value = "8", value_name = "MIB")]
    pub memory_budget_mib: u32,

    /// A campaign whose trusted attributed_users counter has not moved is skipped, but re-read
    /// at least this often anyway; a counter found apart from the rows must agree this long
    /// before it is trusted again.
    #[arg(value_parser = bounds::FULL_SCAN_EVERY, long, default_value = "6h")]
    pub full_scan_every: Duration,

    /// Re-read ranges already settled (read at least --lookback after their end), and
    /// campaigns whose counter has not moved; with --reporting, settled reporting days too (each
    /// unless read within --reporting-refresh), and days read in another --reporting-timezone.
    #[arg(long)]
    pub rescan: bool,

    /// Longest a statement waits for a lock another session holds on a table the job writes;
    /// then the run fails (exit 1) with nothing half-written, and the next run retries; any
    /// statement is cut after 300 s.
    #[arg(value_parser = bounds::LOCK_TIMEOUT, long, default_value = "60s")]
    pub lock_timeout: Duration,

    /// Time limit for a whole response, headers and body.
    #[arg(value_parser = bounds::TIMEOUT, long, default_value = "30s")]
    pub timeout: Duration,

    /// Retries of one request after 429, 5xx or a connection error.
    #[arg(value_parser = bounds::MAX_RETRIES, long, default_value = "8")]
    pub max_retries: usize,

    /// First retry delay; it doubles, with jitter, up to 60s. Retry-After wins
    /// when sent.
    #[arg(value_parser = bounds::RETRY_DELAY, long, default_value = "1s", hide = true)]
    pub retry_delay: Duration,

    /// Rows asked for per page (the API allows 1 to 1000).
    #[arg(value_parser = bounds::PAGE_SIZE, long, default_value = "1000", hide = true)]
    pub page_size: u32,

    /// Most pages read into one transaction before a range is split.
    #[arg(value_parser = bounds::PAGES_PER_SCAN, long, default_value = "20", hide = true)]
    pub pages_per_scan: u64,

    /// Write the run's metrics here at its end, for node_exporter's textfile collector. Only a
    /// regular file (or nothing) there is replaced; a link, FIFO, device or directory is left
    /// alone, with a warning.
    #[arg(long, value_name = "PATH", env = "LINKRUNNER_METRICS_FILE")]
    pub metrics_file: Option<std::path::PathBuf>,

    /// Push the run's metrics to this Prometheus Pushgateway at its end.
    #[arg(long, value_name = "URL", env = "LINKRUNNER_PUSHGATEWAY")]
    pub pushgateway: Option<String>,

    /// Refuse a campaign list that would mark more than this share of the stored live
    /// campaigns deleted at once, or that holds none of them: the key seems to belong to
    /// another project, so the run stores nothing and exits 7.
    #[arg(value_parser = bounds::DELETED_SHARE, long, default_value = "0.5", value_name = "SHARE")]
    pub max_deleted_share: f64,

    /// Accept such a list: the deletions are real.
    #[arg(long, env = "LINKRUNNER_ACCEPT_DELETIONS")]
    pub accept_deletions: bool,

    /// What happens to personal data (user_data name, email, phone, and the other
    /// --personal-data-keys) before anything is stored or logged: keep it, hash it
    /// (HMAC-SHA-256 under LINKRUNNER_PII_KEY, after normalising), or drop it.
    #[arg(
        long,
        env = "LINKRUNNER_PERSONAL_DATA",
        value_enum,
        default_value = "keep"
    )]
    pub personal_data: personal::Mode,

    /// The keys that --personal-data hashes or drops wherever they are in a row or a look-up's
    /// answer (user_data, the row itself, any object nested in them), comma-separated.
    #[arg(
        long,
        env = "LINKRUNNER_PERSONAL_DATA_KEYS",
        value_delimiter = ',',
        default_value = "name,email,phone"
    )]
    pub personal_data_keys: Vec<String>,

    /// When the schema's rows were stored under other --personal-data settings, rewrite them
    /// under these (stricter ones only: keep to hash or drop, hash to drop, more keys). It
    /// cannot be undone; a rewrite cut short goes on at the next run.
    #[arg(long, env = "LINKRUNNER_REWRITE_PERSONAL_DATA")]
    pub rewrite_personal_data: bool,

    /// Secret for --personal-data hash, at least 16 bytes, and for the keys of rows with no user
    /// or device id in hash and drop; keep it for the life of the warehouse (another key hashes
    /// the same person differently). Never printed.
    #[arg(long, env = "LINKRUNNER_PII_KEY", hide_env_values = true)]
    pub pii_key: Option<SecretString>,

    /// Also look up each user's attribution (organic or paid, ad network, keyword) with
    /// GET /get-attribution-result, into linkrunner.attribution_results. Look-ups take only the
    /// requests the sync's own reads leave under --rps.
    #[arg(long, env = "LINKRUNNER_ATTRIBUTION_DETAILS")]
    pub attribution_details: bool,

    /// Also look up the user ids in this column of the same database (schema.table.column, for
    /// example app.users.id; repeat the flag for several). Needs --attribution-details.
    #[arg(long, value_name = "SCHEMA.TABLE.COLUMN")]
    pub lookup_from: Vec<String>,

    /// Most attribution look-ups per run, the longest due first; the rest wait for the next
    /// run. The default takes about 100 s of the default --rps.
    #[arg(value_parser = bounds::MAX_LOOKUPS, long, default_value = "1000", env = "LINKRUNNER_MAX_LOOKUPS")]
    pub max_lookups: u64,

    /// Look-ups stop this long after the signup sync's own reads end, whatever the endpoint
    /// does (no answer, a trickle, 429s, 5xx); the ids left wait for the next run, and a
    /// Retry-After that would outlast it ends them at once.
    #[arg(value_parser = bounds::LOOKUP_TIME, long, default_value = "2m", env = "LINKRUNNER_LOOKUP_TIME")]
    pub lookup_time: Duration,

    /// Also read the Reporting API (clicks, installs, sign-ups, spend, revenue per campaign and
    /// local day of the project's timezone) into linkrunner.reporting_daily and the tables below
    /// it. Days start at --since, or at the first campaign's creation day.
    #[arg(long, env = "LINKRUNNER_REPORTING")]
    pub reporting: bool,

    /// The project's timezone as set in the Linkrunner dashboard (IANA, e.g. Asia/Kolkata): the
    /// Reporting API's days are its local days. Required with --reporting; a wrong one shifts
    /// every day.
    #[arg(value_parser = bounds::Zone, long, env = "LINKRUNNER_REPORTING_TIMEZONE", value_name = "IANA")]
    pub reporting_timezone: Option<chrono_tz::Tz>,

    /// Also read the Reporting API's retargeting view (reinstalls, re-engagements), a second
    /// set of numbers for the same days, each day a request more.
    #[arg(long, env = "LINKRUNNER_REPORTING_RETARGETING")]
    pub reporting_retargeting: bool,

    /// Most Reporting API requests a minute, apart from --rps: the API allows one a minute per
    /// key.
    #[arg(value_parser = bounds::REPORTING_RPM, long, default_value = "1", env = "LINKRUNNER_REPORTING_RPM")]
    pub reporting_rpm: f64,

    /// Most Reporting API requests a run makes; the days left wait for the next run (1 to
    /// 100000). At one a minute the default ends a run's reporting about three minutes after
    /// its first request, so runs every five minutes never overlap.
    #[arg(value_parser = bounds::REPORTING_MAX_REQUESTS, long, default_value = "4", env = "LINKRUNNER_REPORTING_MAX_REQUESTS")]
    pub reporting_max_requests: u32,

    /// Reporting stops this long after it starts (with the signup sync), whatever the Reporting
    /// API does; the days left wait for the next run, and a Retry-After that would outlast it
    /// ends reporting at once.
    #[arg(value_parser = bounds::REPORTING_TIME, long, default_value = "5m", env = "LINKRUNNER_REPORTING_TIME")]
    pub reporting_time: Duration,

    /// Today and this many days before it are read again, for late installs and spend; an
    /// older day read after it left this span is settled and not read
    /// again (unless --rescan).
    #[arg(value_parser = bounds::REPORTING_LOOKBACK, long, default_value = "7d")]
    pub reporting_lookback: Duration,

    /// A day inside --reporting-lookback read longer ago than this is read again.
    #[arg(value_parser = bounds::REPORTING_REFRESH, long, default_value = "1h")]
    pub reporting_refresh: Duration,

    /// Print the plan (campaigns, ranges, estimated requests and time; the reporting days due and
    /// their minutes; the look-ups due) and write nothing. A campaign list the run would refuse
    /// as another project's stops it the same way (exit 7).
    #[arg(long)]
    pub dry_run: bool,

    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// How many recent runs to show.
    #[arg(value_parser = bounds::RUNS, long, default_value = "5")]
    pub runs: i64,

    /// Longest a read waits for a lock another session holds on a table status reads (a
    /// migration under way); then status fails (exit 1).
    #[arg(value_parser = bounds::LOCK_TIMEOUT, long, default_value = "60s")]
    pub lock_timeout: Duration,

    /// A campaign not confirmed current for longer than this is stale; status then exits 6
    ///.
    #[arg(value_parser = bounds::MAX_LAG, long, default_value = "1h")]
    pub max_lag: Duration,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// A user id to erase (user_data.id, exactly); repeatable.
    #[arg(long = "user-id", value_name = "ID")]
    pub user_ids: Vec<String>,

    /// An email to erase (compared in the normal form: Unicode white space trimmed, case
    /// folded); repeatable.
    #[arg(long = "email", value_name = "EMAIL")]
    pub emails: Vec<String>,

    /// A phone number to erase (compared by its digits); repeatable.
    #[arg(long = "phone", value_name = "PHONE")]
    pub phones: Vec<String>,

    /// A regular file of people to erase, one a line: user_id=ID, email=EMAIL or
    /// phone=PHONE; blank lines and lines starting with # are skipped, a leading byte-order
    /// mark too. At most 64 MiB and 1,000,000 lines. Keeps the values off the command line.
    #[arg(long, value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,

    /// Longest a statement waits for a lock another session holds on a table forget deletes
    /// from; then forget fails (exit 1) having erased nothing.
    #[arg(value_parser = bounds::LOCK_TIMEOUT, long, default_value = "60s")]
    pub lock_timeout: Duration,

    /// The key the schema hashes personal data with (--personal-data hash): needed to find
    /// hashed emails and phones. Never printed.
    #[arg(long, env = "LINKRUNNER_PII_KEY", hide_env_values = true)]
    pub pii_key: Option<SecretString>,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address and port to listen on; put it behind the ingress that ends TLS.
    #[arg(long, env = "LINKRUNNER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,

    /// The key Linkrunner sends in the linkrunner-key header (Dashboard, Settings,
    /// Webhooks); defaults to LINKRUNNER_API_KEY. Never printed.
    #[arg(long, env = "LINKRUNNER_WEBHOOK_KEY", hide_env_values = true)]
    pub webhook_key: Option<SecretString>,

    /// The Data API's server key, the webhook key when LINKRUNNER_WEBHOOK_KEY is not set.
    #[arg(long, env = "LINKRUNNER_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,

    /// As `sync --personal-data`: the schema's recorded mode must agree.
    #[arg(
        long,
        env = "LINKRUNNER_PERSONAL_DATA",
        value_enum,
        default_value = "keep"
    )]
    pub personal_data: personal::Mode,

    /// As `sync --personal-data-keys`: also applied inside additional_data and the ad details.
    #[arg(
        long,
        env = "LINKRUNNER_PERSONAL_DATA_KEYS",
        value_delimiter = ',',
        default_value = "name,email,phone"
    )]
    pub personal_data_keys: Vec<String>,

    /// As `sync --pii-key`. Never printed.
    #[arg(long, env = "LINKRUNNER_PII_KEY", hide_env_values = true)]
    pub pii_key: Option<SecretString>,

    /// Directory of the spool: deliveries answered while Postgres cannot take them are synced
    /// to files here and drained in order once it is back. On a disk of its own that outlives
    /// the process (a persistent volume); without it, such deliveries get 503 and Linkrunner
    /// sends them again after 1, 2 and 4 s, then drops them.
    #[arg(long, env = "LINKRUNNER_SPOOL_DIR")]
    pub spool_dir: Option<std::path::PathBuf>,

    /// Most the spool holds; when full, deliveries get 503.
    #[arg(
        value_parser = bounds::SPOOL_MAX_MIB,
        long,
        env = "LINKRUNNER_SPOOL_MAX_MIB",
        default_value = "1024"
    )]
    pub spool_max_mib: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Postgres URL for the demo database, created when missing
    /// [default: postgres://postgres@127.0.0.1:5432/linkrunner_demo].
    #[arg(long, env = "LINKRUNNER_DEMO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Campaigns in the simulated project.
    #[arg(value_parser = bounds::DEMO_CAMPAIGNS, long, default_value = "25")]
    pub campaigns: usize,

    /// Attributed users in the simulated project.
    #[arg(value_parser = bounds::DEMO_USERS, long, default_value = "5000")]
    pub users: usize,

    /// Requests per second, as in `sync`.
    #[arg(value_parser = bounds::RPS, long, default_value = "10")]
    pub rps: f64,

    /// IANA timezone for the windows and the sample query.
    #[arg(value_parser = bounds::Zone, long, default_value = "UTC")]
    pub timezone: chrono_tz::Tz,
}
