//! `linkrunner-sync sync`: one run, or with `--dry-run` its plan.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::cli::{LogFormat, SyncArgs};
use crate::error::Failure;
use crate::{config, db, sync};

/// Runs one sync, stopping at its next safe point on the first SIGTERM or SIGINT.
pub(super) async fn run(args: SyncArgs, log_format: LogFormat) -> Result<(), Failure> {
    let (mut config, options) = config::sync_config(&args, Utc::now()).map_err(Failure::Config)?;
    // A bar between JSON lines would garble them.
    config.progress &= log_format != LogFormat::Json;
    // Ranges of more than a page each hold a connection while they are read; small ones are
    // committed by the writers.
    let readers = config.concurrency.min(sync::campaign::RANGE_TRANSACTIONS);
    let lookups = u32::from(config.lookups.is_some());
    let pool = db::connect(options, readers as u32 + 4 + lookups).await?;
    if args.dry_run {
        print!("{}", sync::plan::dry_run(&config, &pool).await?);
        return Ok(());
    }
    let stop = CancellationToken::new();
    tokio::spawn(super::stop_on_signal(stop.clone()));
    let report = sync::run_until(&config, &pool, stop).await?;
    println!(
        "sync {}: {} campaigns, {} requests, {} rows read, {} new, {} changed in {:.1}s (run {})",
        report.outcome,
        report.totals.users.campaigns_synced,
        report.totals.requests,
        report.totals.users.rows_received,
        report.totals.users.rows_inserted,
        report.totals.users.rows_updated,
        report.seconds,
        report.run_id
    );
    if let Some(settings) = &config.reporting {
        let r = &report.totals.reporting;
        println!(
            "reporting: {} requests ({} rate limited), {} days read, {} rows new, {} changed, {} values unparsed; {} days due wait for the next run (about {:.0} min at {} a minute)",
            r.requests,
            r.rate_limited,
            r.days,
            r.rows_inserted,
            r.rows_changed,
            r.unparsed,
            r.days_left,
            r.days_left as f64 / settings.rpm,
            settings.rpm
        );
    }
    if config.lookups.is_some() {
        let t = &report.totals.lookups;
        println!(
            "attribution look-ups: {} ({} found, {} not found, {} failed)",
            t.made, t.found, t.not_found, t.failed
        );
    }
    Ok(())
}
