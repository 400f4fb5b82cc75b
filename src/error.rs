//! The run's outcome as an error kind, and the exit code each kind maps to.

use std::process::ExitCode;

/// Exit codes, documented in docs/operating.md ("Exit codes").
pub mod code {
    pub const SUCCESS: u8 = 0;
    pub const TRANSIENT: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const PARTIAL: u8 = 4;
    pub const LOCKED: u8 = 5;
    pub const STALE: u8 = 6;
    pub const OTHER_PROJECT: u8 = 7;
}

/// Why a command did not finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad flags, environment or input (nothing was changed), or a problem every run would
    /// meet again until someone fixes it: a database that refuses (a missing privilege, a table
    /// of another shape), a base URL with no API behind it. What was committed stays.
    #[error("{0}")]
    Config(String),
    /// Linkrunner refused the API key.
    #[error("{0}")]
    Auth(String),
    /// Another sync holds the database lock.
    #[error("another linkrunner-sync run holds the lock of this schema (--schema); not starting: runs of one schema never overlap")]
    Locked,
    /// Some campaigns could not be synced; what finished is committed.
    #[error("{0}")]
    Partial(String),
    /// `status` found campaigns behind the freshness threshold.
    #[error("{0}")]
    Stale(String),
    /// The campaign list would mark most of the stored campaigns deleted at once: the key
    /// seems to belong to another project. Nothing was stored.
    #[error("{0}")]
    OtherProject(String),
    /// Stopped by SIGTERM or SIGINT at a safe point; what finished is committed.
    #[error("stopped by a signal; every finished range is committed and the next run resumes")]
    Interrupted,
    /// Network, server or database trouble; the next run repairs it.
    #[error(transparent)]
    Transient(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    /// Transient, unless the database refused in a way every run would meet again (a missing
    /// privilege, a table of another shape): that is configuration, with what to fix.
    fn from(e: anyhow::Error) -> Self {
        match crate::db::errors::in_chain(&e) {
            Some(why) => Failure::Config(format!("{}: {why}", chain_line(&e))),
            None => Failure::Transient(e),
        }
    }
}

impl Failure {
    /// A database error while doing `what`: configuration when it would repeat on every run
    /// ([`crate::db::errors`]), else transient.
    pub fn database(e: sqlx::Error, what: &str) -> Failure {
        Failure::from(anyhow::Error::new(e).context(what.to_owned()))
    }

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
            Failure::OtherProject(_) => code::OTHER_PROJECT,
            Failure::Transient(_) | Failure::Interrupted => code::TRANSIENT,
        }
    }

    /// Where this failure stands when streams of one run end differently (docs/operating.md,
    /// "Exit codes"): what needs a person and repeats every run until fixed comes first (a
    /// refused key, then configuration, then a key of another project), then trouble that passes
    /// (and a stop), then work set aside while the rest landed. Higher wins.
    fn rank(&self) -> u8 {
        match self {
            Failure::Auth(_) => 7,
            Failure::Config(_) => 6,
            Failure::OtherProject(_) => 5,
            Failure::Locked => 4,
            Failure::Stale(_) => 3,
            Failure::Transient(_) | Failure::Interrupted => 2,
            Failure::Partial(_) => 1,
        }
    }

    /// One line: the error and its causes, joined.
    pub fn one_line(&self) -> String {
        match self {
            Failure::Transient(e) => chain_line(e),
            other => other.to_string().replace('\n', " "),
        }
    }
}

/// The outcome of a run whose streams (signup sync, look-ups, reporting) ended with `first`
/// and `second`: the failure of higher rank ([`Failure::rank`]), `first` on a tie. The one
/// left out is logged as a warning when its exit code differs, so no refusal goes unsaid.
pub fn worst(first: Result<(), Failure>, second: Result<(), Failure>) -> Result<(), Failure> {
    match (first, second) {
        (Ok(()), other) | (other, Ok(())) => other,
        (Err(a), Err(b)) => {
            let (kept, dropped) = if b.rank() > a.rank() { (b, a) } else { (a, b) };
            // One of the same code adds nothing to what to do: the error line says it.
            if dropped.code() == kept.code() {
                tracing::debug!(error = %dropped.one_line(), "the run also met this");
            } else {
                tracing::warn!(
                    exit_code = dropped.code(),
                    error = %dropped.one_line(),
                    "the run also met this; exit code {} goes first",
                    kept.code()
                );
            }
            Err(kept)
        }
    }
}

/// An error and its causes on one line, each said once: a database error repeats its cause's
/// message in its own.
fn chain_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(code: u8) -> Result<(), Failure> {
        match code {
            code::SUCCESS => Ok(()),
            code::TRANSIENT => Err(Failure::Transient(anyhow::anyhow!("lost"))),
            code::CONFIG => Err(Failure::Config("refused".into())),
            code::AUTH => Err(Failure::Auth("key".into())),
            code::PARTIAL => Err(Failure::Partial("set aside".into())),
            code::OTHER_PROJECT => Err(Failure::OtherProject("other".into())),
            _ => unreachable!(),
        }
    }

    fn exit(result: &Result<(), Failure>) -> u8 {
        result.as_ref().err().map_or(code::SUCCESS, Failure::code)
    }

    /// Every pair of the codes a sync's streams end with, in either order: 3 > 2 > 7 > 1 > 4 > 0.
    #[test]
    fn the_worst_of_two_streams_follows_the_documented_order() {
        let order = [3, 2, 7, 1, 4, 0];
        for (i, &a) in order.iter().enumerate() {
            for &b in &order[i..] {
                assert_eq!(exit(&worst(of(a), of(b))), a, "{a} then {b}");
                assert_eq!(exit(&worst(of(b), of(a))), a, "{b} then {a}");
            }
        }
        assert_eq!(exit(&worst(Err(Failure::Interrupted), of(4))), 1);
        assert_eq!(exit(&worst(Err(Failure::Interrupted), of(3))), 3);
        // On a tie the first stream's message is kept.
        let kept = worst(Err(Failure::Config("first".into())), of(2)).unwrap_err();
        assert_eq!(kept.one_line(), "first");
    }
}
