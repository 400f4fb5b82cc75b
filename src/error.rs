//! The run's outcome as an error kind, and the exit code each kind maps to.

use std::process::ExitCode;

/// Exit codes, documented in the README.
pub mod code {
    pub const SUCCESS: u8 = 0;
    pub const TRANSIENT: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const PARTIAL: u8 = 4;
    pub const LOCKED: u8 = 5;
    pub const STALE: u8 = 6;
}

/// Why a command did not finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad flags, environment or input; nothing was changed.
    #[error("{0}")]
    Config(String),
    /// Linkrunner refused the API key.
    #[error("{0}")]
    Auth(String),
    /// Another sync holds the database lock.
    #[error("another linkrunner-sync run holds the lock on this database; not starting")]
    Locked,
    /// Some campaigns could not be synced; what finished is committed.
    #[error("{0}")]
    Partial(String),
    /// `status` found campaigns behind the freshness threshold.
    #[error("{0}")]
    Stale(String),
    /// Stopped by SIGTERM or SIGINT at a safe point; what finished is committed.
    #[error("stopped by a signal; every finished range is committed and the next run resumes")]
    Interrupted,
    /// Network, server or database trouble; the next run repairs it.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    pub fn code(&self) -> u8 {
        match self {
            Failure::Config(_) => code::CONFIG,
            Failure::Auth(_) => code::AUTH,
            Failure::Locked => code::LOCKED,
            Failure::Partial(_) => code::PARTIAL,
            Failure::Stale(_) => code::STALE,
            Failure::Transient(_) | Failure::Interrupted => code::TRANSIENT,
        }
    }

    /// One line: the error and its causes, joined.
    pub fn one_line(&self) -> String {
        match self {
            Failure::Transient(e) => format!("{e:#}").replace('\n', " "),
            other => other.to_string().replace('\n', " "),
        }
    }
}
