//! `linkrunner-sim` on the command line: serves the simulator until Ctrl-C or SIGTERM.
//!
//! Prints exactly one line to stdout, `linkrunner-sim listening on http://<addr>/api/v1`, for
//! scripts to read; everything else is logged to stderr.

use crate::config::{ReportingLimit, SimConfig};
use crate::control::FaultArgs;
use crate::state::Simulator;
use crate::webhook::WebhookArgs;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::Parser;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

/// A local test double of the Linkrunner HTTP API, with a synthetic data set.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seed of the data set and of the injected faults.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of campaigns to generate.
    #[arg(long, default_value_t = SimConfig::default().campaigns)]
    campaigns: usize,
    /// Number of attributed-user rows to generate, across all campaigns.
    #[arg(long, default_value_t = SimConfig::default().users)]
    users: usize,
    /// Spread the rows evenly over the campaigns (by default one campaign takes ~30% and the
    /// rest a random share each).
    #[arg(long)]
    even: bool,
    /// Earliest generated timestamp (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = parse_time, default_value = "2026-02-15")]
    start: DateTime<Utc>,
    /// Latest generated attributed_at (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = parse_time, default_value = "2026-11-15")]
    end: DateTime<Utc>,
    /// Accepted `linkrunner-key` header.
    #[arg(
        long,
        env = "LINKRUNNER_SIM_API_KEY",
        default_value = "sim-key",
        hide_env_values = true
    )]
    api_key: String,
    /// Accepted body `token` of the client API.
    #[arg(long, default_value = "sim-token")]
    project_token: String,
    /// Share of campaigns whose attributed_users counter lies (reads 0, frozen below the rows,
    /// counts installs without signup, or lags some minutes), 0 to 1.
    #[arg(long, default_value_t = SimConfig::default().counter_lie_rate)]
    counter_lie_rate: f64,
    #[command(flatten)]
    reporting: ReportingArgs,
    #[command(flatten)]
    faults: FaultArgs,
    #[command(flatten)]
    webhook: WebhookArgs,
}

/// The Reporting API's project settings.
#[derive(clap::Args, Debug)]
struct ReportingArgs {
    /// The project's timezone (IANA name): the Reporting API's from/to are its local days.
    #[arg(long, default_value_t = SimConfig::default().reporting_timezone)]
    reporting_timezone: Tz,
    /// Reporting API requests let through per key in each --reporting-window-ms; 0 turns the
    /// limit off.
    #[arg(long, default_value_t = ReportingLimit::default().requests)]
    reporting_limit: u32,
    /// The window of the Reporting API's limit, in milliseconds.
    #[arg(long, default_value_t = ReportingLimit::default().window.as_millis() as u64)]
    reporting_window_ms: u64,
    /// Retry-After of the Reporting API's 429s, in seconds.
    #[arg(long, default_value_t = ReportingLimit::default().retry_after_secs)]
    reporting_retry_after: u64,
    /// Answer the Reporting API 402, as for a suspended billing account.
    #[arg(long)]
    reporting_billing_suspended: bool,
}

impl ReportingArgs {
    fn limit(&self) -> Option<ReportingLimit> {
        (self.reporting_limit > 0).then(|| ReportingLimit {
            requests: self.reporting_limit,
            window: std::time::Duration::from_millis(self.reporting_window_ms),
            retry_after_secs: self.reporting_retry_after,
        })
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("'{s}' is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(day.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

impl Args {
    fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            campaigns: self.campaigns,
            users: self.users,
            even: self.even,
            start: self.start,
            end: self.end,
            api_key: self.api_key.clone(),
            project_token: self.project_token.clone(),
            counter_lie_rate: self.counter_lie_rate,
            reporting_timezone: self.reporting.reporting_timezone,
            reporting_limit: self.reporting.limit(),
            reporting_billing_suspended: self.reporting.reporting_billing_suspended,
            faults: self.faults.clone().into(),
            // The URL flag is parsed by `check_url`, so only a missing one gives no target.
            webhook: self.webhook.config(&self.api_key).unwrap_or_default(),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. Both handlers are installed before this returns, so a script
/// that stops the simulator as soon as it reads the listening line still gets a clean exit.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Runs the simulator as the `linkrunner-sim` binary does, with `args` (the first is the
/// program's name) as its command line; a benchmark can serve it from its own executable.
pub fn main(args: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let args = Args::parse_from(args);
    tokio::runtime::Runtime::new()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    logs.with_writer(std::io::stderr).init();
    anyhow::ensure!(args.start < args.end, "--start must be before --end");
    let sim = Simulator::new(args.config());
    let server = sim.serve(args.listen).await?;
    let stop = stop_signal()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "linkrunner-sim listening on {}", server.base_url())?;
    out.flush()?;
    drop(out);
    stop.await;
    tracing::info!(stats = ?sim.stats(), "stopping");
    server.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fault_flags_reach_the_config() {
        let flags =
            "linkrunner-sim --rate-limit 5 --storm-rate 0.1 --storm-len-ms 1500 --slow-rate 0.2 \
            --slow-delay-ms 40000 --reset-rate 0.3 --truncate-rate 0.4 --html-rate 0.5 \
            --churn-rate 0.6 --drift-rate 0.7 --bad-row-rate 0.8";
        let args = Args::try_parse_from(flags.split_whitespace());
        let f = args.unwrap().config().faults;
        let rates = [
            f.storm_rate,
            f.slow_rate,
            f.reset_rate,
            f.truncate_rate,
            f.html_rate,
        ];
        let rows = [f.churn_rate, f.drift_rate, f.bad_row_rate];
        assert_eq!((rates, rows), ([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8]));
        let ms = Duration::from_millis;
        assert_eq!((f.storm_len, f.slow_delay), (ms(1500), ms(40_000)));
        assert_eq!(f.rate_limit_rps, Some(5.0));
    }

    #[test]
    fn webhook_flags_reach_the_config() {
        let parse = |flags: &str| Args::try_parse_from(flags.split_whitespace());
        assert_eq!(parse("linkrunner-sim").unwrap().config().webhook, None);
        let flags = "linkrunner-sim --api-key k1 --webhook-url http://127.0.0.1:9/hook \
            --webhook-retry-delays-ms 10,20 --webhook-timeout-ms 300 --webhook-drop-rate 0.1 \
            --webhook-double-rate 0.2 --webhook-delay-rate 0.3 --webhook-delay-max-ms 40 \
            --webhook-reorder-rate 0.4 --webhook-reorder-hold-ms 50";
        let w = parse(flags).unwrap().config().webhook.unwrap();
        assert_eq!(
            (w.url.as_str(), w.key.as_str()),
            ("http://127.0.0.1:9/hook", "k1")
        );
        let ms = Duration::from_millis;
        assert_eq!((w.retry_delays, w.timeout), (vec![ms(10), ms(20)], ms(300)));
        let f = w.faults;
        let rates = [f.drop_rate, f.double_rate, f.delay_rate, f.reorder_rate];
        assert_eq!(rates, [0.1, 0.2, 0.3, 0.4]);
        assert_eq!((f.delay_max, f.reorder_hold), (ms(40), ms(50)));
        let own_key = "linkrunner-sim --webhook-url http://h/ --webhook-key k2";
        let w = parse(own_key).unwrap().config().webhook.unwrap();
        assert_eq!(w.key, "k2");
        let secs = Duration::from_secs;
        assert_eq!(
            (w.retry_delays, w.timeout),
            (vec![secs(1), secs(2), secs(4)], secs(5))
        );
        assert!(parse("linkrunner-sim --webhook-url not-a-url").is_err());
    }

    #[test]
    fn reporting_flags_reach_the_config() {
        let parse = |flags: &str| {
            Args::try_parse_from(flags.split_whitespace())
                .unwrap()
                .config()
        };
        let default = parse("linkrunner-sim");
        assert_eq!(default.reporting_timezone, Tz::Asia__Kolkata);
        assert_eq!(default.reporting_limit, Some(ReportingLimit::default()));
        let flags = "linkrunner-sim --reporting-timezone America/New_York --reporting-limit 5 \
            --reporting-window-ms 1000 --reporting-retry-after 2 --reporting-billing-suspended";
        let set = parse(flags);
        assert_eq!(set.reporting_timezone, Tz::America__New_York);
        let limit = set.reporting_limit.unwrap();
        let window = Duration::from_secs(1);
        assert_eq!(
            (limit.requests, limit.window, limit.retry_after_secs),
            (5, window, 2)
        );
        assert!(set.reporting_billing_suspended);
        assert_eq!(
            parse("linkrunner-sim --reporting-limit 0").reporting_limit,
            None
        );
    }
}
