//! The streams of data a run reads (attributed users, attribution look-ups, the Reporting
//! API's days): each checks its settings, prepares, plans for `--dry-run`, reads and commits,
//! and counts its own figures. The run drives them alike, under the one rate limit and the
//! run lock, and does not know them by name.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SyncConfig;
use crate::db::RunLock;
use crate::error::Failure;
use crate::model::campaign::CampaignRow;
use crate::model::run::RunTotals;
use crate::sync::run::Run;

/// A step of a stream that may fail.
pub(crate) type Step<'a, T> = BoxFuture<'a, Result<T, Failure>>;

/// One stream of data.
pub(crate) trait Stream: Send + Sync {
    /// Refuses settings the database cannot serve, before any request is made.
    fn check<'a>(&'a self, _run: &'a Run, _conn: &'a mut PgConnection) -> Step<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Once the schema is current and before the run is recorded: refuses what the stored data
    /// disagrees with, and reads what the stream starts from.
    fn prepare<'a>(&'a self, _run: &'a Run, _conn: &'a mut PgConnection) -> Step<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// What `--dry-run` prints for the stream.
    fn plan<'a>(&'a self, plan: &'a Planning<'a>) -> Step<'a, String>;

    /// Reads and commits, beside the other streams.
    fn sync<'a>(&'a self, shared: &'a Shared<'a>) -> Synced<'a>;
}

/// What a dry run gives each stream's plan.
pub(crate) struct Planning<'a> {
    pub config: &'a SyncConfig,
    pub pool: &'a PgPool,
    pub listed: &'a [CampaignRow],
}

/// The campaign list a run read, once judged.
pub(crate) struct Listed {
    pub campaigns: Arc<Vec<CampaignRow>>,
    /// When it was read.
    pub at: DateTime<Utc>,
    /// Whether one pass saw it steady and complete.
    pub complete: bool,
}

/// What the run gives each stream.
pub(crate) struct Shared<'a> {
    pub run: &'a Run,
    pub lock: &'a RunLock,
    pub listed: &'a Listed,
    /// Turns true once the campaigns' reads are done: a stream that only takes the requests
    /// they leave asks once more then, with the rows they stored.
    pub reads_done: &'a watch::Sender<bool>,
}

/// A stream under way.
pub(crate) enum Synced<'a> {
    /// Ends within the run, under its lock; its figures are recorded with the run's end.
    Within(BoxFuture<'a, Ended>),
    /// Goes on after the run lock is let go, and records its figures itself.
    Beyond(JoinHandle<Ended>),
}

/// What a stream came to.
pub(crate) struct Ended {
    /// Adds the stream's figures to the run's.
    pub figures: Box<dyn FnOnce(&mut RunTotals) + Send>,
    pub result: Result<(), Failure>,
}

impl Ended {
    pub(crate) fn new(
        figures: impl FnOnce(&mut RunTotals) + Send + 'static,
        result: Result<(), Failure>,
    ) -> Ended {
        Ended {
            figures: Box::new(figures),
            result,
        }
    }

    /// Nothing counted, and why.
    pub(crate) fn failed(e: Failure) -> Ended {
        Ended::new(|_| {}, Err(e))
    }
}
