//! Each subcommand's entry point; `main` only turns the result into an exit code.

use chrono::Utc;

use crate::cli::{Cli, Command, DbArgs, StatusArgs, SyncArgs};
use crate::error::Failure;
use crate::{config, db, status, sync};

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Sync(args) => sync_command(*args).await,
        Command::Migrate(args) => migrate_command(args).await,
        Command::Status(args) => status_command(args).await,
        Command::Demo(args) => crate::demo::run(args).await,
    }
}

async fn sync_command(args: SyncArgs) -> Result<(), Failure> {
    let (config, options) = config::sync_config(&args, Utc::now()).map_err(Failure::Config)?;
    let pool = db::connect(options, config.concurrency as u32 + 2).await?;
    let report = sync::run(&config, &pool).await?;
    println!(
        "sync {}: {} campaigns, {} requests, {} rows read, {} new, {} changed in {:.1}s (run {})",
        report.outcome,
        report.totals.campaigns_synced,
        report.totals.requests,
        report.totals.rows_received,
        report.totals.rows_inserted,
        report.totals.rows_updated,
        report.seconds,
        report.run_id
    );
    Ok(())
}

async fn migrate_command(args: DbArgs) -> Result<(), Failure> {
    let options = config::database(args.database_url.as_ref()).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    db::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}

async fn status_command(args: StatusArgs) -> Result<(), Failure> {
    let options = config::database(args.db.database_url.as_ref()).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    db::migrate(&pool).await?;
    let text = status::report(&pool, args.runs)
        .await
        .map_err(|e| Failure::Transient(e.into()))?;
    print!("{text}");
    Ok(())
}
