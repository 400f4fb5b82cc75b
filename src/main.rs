use std::process::ExitCode;

use clap::Parser;
use linkrunner_sync::cli::Cli;
use linkrunner_sync::{commands, secrets, telemetry};

fn main() -> ExitCode {
    secrets::install_panic_hook();
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("linkrunner-sync: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("linkrunner-sync: error: {}", secrets::redact(&failure.one_line()));
            failure.exit_code()
        }
    }
}
