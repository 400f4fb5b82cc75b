//! Each subcommand's entry point; `main` only turns the result into an exit code.

use chrono::Utc;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, DbArgs, ForgetArgs, LogFormat, OutputFormat, StatusArgs, SyncArgs};
use crate::error::Failure;
use crate::model::personal;
use crate::{config, db, forget, limits, secrets, status, sync};

pub async fn run(cli: Cli) -> Result<(), Failure> {
    register_secrets(&cli);
    match cli.command {
        Command::Sync(args) => sync_command(*args, cli.log_format).await,
        Command::Migrate(args) => migrate_command(args).await,
        Command::Status(args) => status_command(args).await,
        Command::Forget(args) => forget_command(args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => crate::demo::run(args).await,
    }
}

async fn sync_command(args: SyncArgs, log_format: LogFormat) -> Result<(), Failure> {
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
    tokio::spawn(stop_on_signal(stop.clone()));
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

async fn migrate_command(args: DbArgs) -> Result<(), Failure> {
    let schema = config::schema(&args).map_err(Failure::Config)?;
    let options = config::database(args.database_url.as_ref()).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    db::migrate(&mut *db::session(&pool).await?, &schema).await?;
    println!("migrations applied to schema {schema}");
    Ok(())
}

async fn forget_command(args: ForgetArgs) -> Result<(), Failure> {
    let people = forget::people(&args).map_err(Failure::Config)?;
    let schema = config::schema(&args.db).map_err(Failure::Config)?;
    let options = forget::database(&args).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    let lock = db::try_lock(&pool, &schema, CancellationToken::new())
        .await?
        .ok_or(Failure::Locked)?;
    let stop = CancellationToken::new();
    tokio::spawn(forget::stop_on_signal(stop.clone()));
    let backend = forget::backend(&lock).await?;
    // The erasure is one transaction: a signal cancels its statement, so that it rolls back
    // and the lock goes at once rather than when a wait for another lock ends.
    let result = tokio::select! {
        result = forget::run(&schema, &lock, &people, args.pii_key) => result,
        () = stop.cancelled() => {
            forget::cancel(&pool, backend).await;
            Err(Failure::Transient(anyhow::anyhow!(
                "forget stopped by a signal before it confirmed the erasure; run it again \
                 (what was erased stays erased)"
            )))
        }
    };
    lock.release().await;
    print!("{}", result?);
    Ok(())
}

async fn status_command(args: StatusArgs) -> Result<(), Failure> {
    let max_lag = limits::duration("--max-lag", &args.max_lag, &limits::MAX_LAG)
        .and_then(|lag| limits::number("--runs", args.runs, limits::RUNS).map(|_| lag))
        .map_err(Failure::Config)?;
    let schema = config::schema(&args.db).map_err(Failure::Config)?;
    let options =
        config::waiting_database(&args.db, &args.lock_timeout).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    db::prepare(&mut *db::session(&pool).await?, &schema).await?;
    let status = status::load(&schema, &pool, args.runs, max_lag)
        .await
        .map_err(|e| Failure::database(e, "reading the sync state"))?;
    // What the ledger holds came from servers: masked whatever its age.
    match args.format {
        OutputFormat::Text => print!("{}", secrets::redact(&status::render(&status))),
        OutputFormat::Json => println!(
            "{}",
            secrets::redact(&serde_json::to_string_pretty(&status).expect("status serializes"))
        ),
    }
    if status.stale > 0 {
        return Err(Failure::Stale(format!(
            "{} campaigns are behind by more than {}",
            status.stale, args.max_lag
        )));
    }
    Ok(())
}

/// The first SIGTERM or SIGINT asks the run to stop at its next safe point (what Kubernetes
/// sends before it kills); a second one ends the process at once.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; SIGTERM will end the run abruptly");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("signal received: stopping after the ranges in flight are committed");
    stop.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "linkrunner-sync: second signal: stopping now; uncommitted ranges are read again next run"
    );
    std::process::exit(i32::from(crate::error::code::TRANSIENT));
}

/// Everything that must never be printed, from the flags and the environment.
fn register_secrets(cli: &Cli) {
    for name in [
        "LINKRUNNER_API_KEY",
        "DATABASE_URL",
        "LINKRUNNER_DEMO_DATABASE_URL",
        "LINKRUNNER_PII_KEY",
    ] {
        if let Ok(value) = std::env::var(name) {
            register_value(name, &value);
        }
    }
    let (key, url) = match &cli.command {
        Command::Sync(a) => (a.api_key.as_ref(), a.db.database_url.as_ref()),
        Command::Migrate(a) => (None, a.database_url.as_ref()),
        Command::Status(a) => (None, a.db.database_url.as_ref()),
        Command::Forget(a) => (None, a.db.database_url.as_ref()),
        #[cfg(feature = "demo")]
        Command::Demo(a) => (None, a.database_url.as_ref()),
    };
    if let Some(key) = key {
        secrets::register_key(key.expose_secret(), config::MIN_API_KEY_BYTES);
    }
    let pii_key = match &cli.command {
        Command::Sync(a) => a.pii_key.as_ref(),
        Command::Forget(a) => a.pii_key.as_ref(),
        _ => None,
    };
    if let Some(key) = pii_key {
        secrets::register_key(key.expose_secret(), personal::MIN_KEY_BYTES);
    }
    if let Some(url) = url {
        secrets::register_database_url(url.expose_secret());
    }
}

/// Registers a secret; a key shorter than the job takes is refused before anything runs, and is
/// not registered, so that its refusal reads as written.
fn register_value(name: &str, value: &str) {
    match name {
        "LINKRUNNER_API_KEY" => secrets::register_key(value, config::MIN_API_KEY_BYTES),
        "LINKRUNNER_PII_KEY" => secrets::register_key(value, personal::MIN_KEY_BYTES),
        _ if name.ends_with("DATABASE_URL") => secrets::register_database_url(value),
        _ => secrets::register(value),
    }
}
