use std::process::ExitCode;

use clap::FromArgMatches;
use linkrunner_sync::cli::{self, Cli};
use linkrunner_sync::commands;
use linkrunner_sync::error::code;
use linkrunner_sync::output::{logs, secrets};

fn main() -> ExitCode {
    secrets::install_panic_hook();
    let parsed = cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // Usage errors in one line, like every other error; --help shows the usage.
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "linkrunner-sync: {}",
                line.trim_start_matches("error: ").trim()
            );
            return ExitCode::from(code::CONFIG);
        }
        Err(e) => e.exit(),
    };
    logs::init(cli.log_format);
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
            eprintln!(
                "linkrunner-sync: error: {}",
                secrets::clean(&failure.one_line(), 4000)
            );
            failure.exit_code()
        }
    }
}
