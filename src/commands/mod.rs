//! The subcommands, one file each; `main` only turns the result into an exit code.

#[cfg(feature = "demo")]
pub mod demo;
pub mod forget;
mod migrate;
mod receive;
pub mod status;
mod sync;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command};
use crate::config;
use crate::error::Failure;
use crate::model::personal;
use crate::output::secrets;

pub async fn run(cli: Cli) -> Result<(), Failure> {
    register_secrets(&cli);
    match cli.command {
        Command::Sync(args) => sync::run(*args, cli.log_format).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Forget(args) => forget::run_command(args).await,
        Command::Receive(args) => receive::run(args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args).await,
    }
}

/// The first SIGTERM or SIGINT asks the run to stop at its next safe point (what Kubernetes
/// sends before it kills); a second one ends the process at once.
pub(crate) async fn stop_on_signal(stop: CancellationToken) {
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
        "LINKRUNNER_WEBHOOK_KEY",
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
        Command::Receive(a) => (
            a.webhook_key.as_ref().or(a.api_key.as_ref()),
            a.db.database_url.as_ref(),
        ),
        #[cfg(feature = "demo")]
        Command::Demo(a) => (None, a.database_url.as_ref()),
    };
    if let Some(key) = key {
        secrets::register_key(key.expose_secret(), config::MIN_API_KEY_BYTES);
    }
    let pii_key = match &cli.command {
        Command::Sync(a) => a.pii_key.as_ref(),
        Command::Forget(a) => a.pii_key.as_ref(),
        Command::Receive(a) => a.pii_key.as_ref(),
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
        "LINKRUNNER_API_KEY" | "LINKRUNNER_WEBHOOK_KEY" => {
            secrets::register_key(value, config::MIN_API_KEY_BYTES)
        }
        "LINKRUNNER_PII_KEY" => secrets::register_key(value, personal::MIN_KEY_BYTES),
        _ if name.ends_with("DATABASE_URL") => secrets::register_database_url(value),
        _ => secrets::register(value),
    }
}
