//! One sync run: list campaigns, then read every stream the settings ask for, under the run
//! lock and the one rate limit.

pub mod batch;
pub mod campaign;
mod guard;
pub mod list;
mod lookup;
pub mod metrics;
pub mod plan;
mod progress;
pub mod queue;
mod range;
pub(crate) mod reporting;
mod retry;
mod run;
pub mod scan;
mod scanner;
mod sink;
mod stream;
mod streams;
pub mod trust;
mod users;

use std::sync::Arc;

use anyhow::Context;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::api::{ApiClient, ApiStats};
use crate::config::SyncConfig;
use crate::db;
use crate::db::state;
use crate::error::{self, Failure};
pub use crate::model::run::{LookupTotals, Outcome, RunReport, RunTotals, UserTotals};
use crate::sync::list::fetch_campaigns;
use crate::sync::run::Run;
use crate::sync::stream::{Ended, Listed, Shared, Stream, Synced};

/// Runs one sync against `pool`, holding the database's run lock throughout.
pub async fn run(config: &SyncConfig, pool: &PgPool) -> Result<RunReport, Failure> {
    run_until(config, pool, CancellationToken::new()).await
}

/// As `run`, stopping at the next safe point once `stop` is cancelled.
pub async fn run_until(
    config: &SyncConfig,
    pool: &PgPool,
    stop: CancellationToken,
) -> Result<RunReport, Failure> {
    let halt = stop.child_token();
    let lock = db::try_lock(pool, &config.schema, halt.clone())
        .await?
        .ok_or(Failure::Locked)?;
    let Locked { closed, beyond } = match ApiClient::new(config.api.clone()) {
        Err(e) => Locked {
            closed: Closed::Unreported(Failure::Config(e.to_string())),
            beyond: Vec::new(),
        },
        Ok(api) => {
            let run_id = Uuid::new_v4();
            let run = Run {
                config: Arc::new(config.clone()),
                pool: pool.clone(),
                api: api.with_halt(halt.clone()),
                run_id,
                halt: halt.clone(),
                bars: progress::bars(config.progress),
                suppression: Arc::default(),
            };
            // Every log line of the run carries its id; campaign and range spans nest below it.
            run.locked(&lock, streams::of(config))
                .instrument(tracing::info_span!("run", %run_id))
                .await
        }
    };
    lock.release().await;
    // Streams that go on without the run lock (the Reporting API's minutes) end here.
    let (mut report, mut result) = match closed {
        Closed::Reported(report, result) => (Some(*report), result),
        Closed::Unreported(e) => (None, Err(e)),
    };
    for task in beyond {
        let ended = task.await.unwrap_or_else(|e| {
            Ended::failed(Failure::Transient(anyhow::anyhow!(
                "a stream's task failed: {e}"
            )))
        });
        if let Some(report) = &mut report {
            (ended.figures)(&mut report.totals);
        }
        result = error::worst(result, ended.result);
    }
    // After the lock is let go: a Pushgateway that never answers must not keep the next run out.
    if let Some(report) = &report {
        export_metrics(config, report, &result, &stop).await;
    }
    result.and(report.ok_or_else(|| Failure::Transient(anyhow::anyhow!("the run did not start"))))
}

/// What a run under its lock ends with.
struct Locked {
    closed: Closed,
    /// The streams that go on after the lock is let go.
    beyond: Vec<JoinHandle<Ended>>,
}

/// How a run's ledger row was left.
enum Closed {
    /// Its end is recorded with its figures; the run may still have failed.
    Reported(Box<RunReport>, Result<(), Failure>),
    /// Refused before it was recorded, or its end could not be recorded.
    Unreported(Failure),
}

/// How far the run's preparation got.
enum Prepared {
    /// Refused before the run was recorded: nothing to finish in the ledger.
    Refused(Failure),
    /// Recorded, then failed: its end must still be recorded.
    Failed(Failure),
    /// Recorded, every stream ready.
    Ready,
}

impl Run {
    /// The run, once it holds the lock.
    async fn locked(&self, lock: &db::RunLock, streams: Vec<Box<dyn Stream>>) -> Locked {
        let unreported = |e| Locked {
            closed: Closed::Unreported(e),
            beyond: Vec::new(),
        };
        let started = std::time::Instant::now();
        let mut conn = lock.session().await;
        for stream in &streams {
            if let Err(e) = stream.check(self, &mut conn).await {
                return unreported(e);
            }
        }
        // The campaign list is read while the database is made ready; neither waits on the
        // other.
        let listed_at = chrono::Utc::now();
        let (listed, prepared) = tokio::join!(
            fetch_campaigns(&self.api),
            self.prepare(&mut conn, &streams)
        );
        drop(conn);
        let mut totals = RunTotals::default();
        let mut beyond = Vec::new();
        let mut result = match (prepared, listed) {
            (Prepared::Refused(e), _) => return unreported(e),
            (Prepared::Failed(e), _) | (Prepared::Ready, Err(e)) => Err(e),
            (Prepared::Ready, Ok((campaigns, complete))) => {
                match self.guard(lock, &campaigns, complete).await {
                    Ok(()) => {
                        let listed = Listed {
                            campaigns: Arc::new(campaigns),
                            at: listed_at,
                            complete,
                        };
                        let (ended, later) = self.sync_streams(lock, &listed, &streams).await;
                        beyond = later;
                        let mut result = Ok(());
                        for ended in ended {
                            (ended.figures)(&mut totals);
                            // Each stream's failure is weighed against the others': a look-up
                            // endpoint that is not there is not hidden by a campaign that
                            // failed, nor the reverse.
                            result = error::worst(result, ended.result);
                        }
                        result
                    }
                    Err(e) => Err(e),
                }
            }
        };
        // What a stop cut short is an interruption, not a failure.
        if self.halt.is_cancelled() && matches!(result, Ok(()) | Err(Failure::Transient(_))) {
            result = Err(if lock.lost() {
                Failure::Transient(anyhow::anyhow!(
                    "the run lock was lost to another run; stopped"
                ))
            } else {
                Failure::Interrupted
            });
        }
        let closed = match self.finish(lock, &result, totals, started).await {
            Err(e) => Closed::Unreported(e),
            Ok(report) => {
                let rejected = report.totals.users.rows_rejected;
                let result = match result {
                    Ok(()) if rejected > 0 => Err(Failure::Partial(format!(
                        "{rejected} rows could not be read and were kept in {}.rejected_rows (run {})",
                        self.config.schema, self.run_id
                    ))),
                    other => other,
                };
                Closed::Reported(Box::new(report), result)
            }
        };
        Locked { closed, beyond }
    }

    /// Migrates, prepares every stream, records the run in the ledger and reads the
    /// suppression list (rewriting stored personal data when asked to).
    async fn prepare(&self, conn: &mut PgConnection, streams: &[Box<dyn Stream>]) -> Prepared {
        if let Err(e) = db::prepare(conn, &self.config.schema).await {
            return Prepared::Refused(e.into());
        }
        let personal = &self.config.personal;
        let (schema, run_id) = (&self.config.schema, self.run_id);
        let rewrite = self.config.rewrite_personal_data;
        let plan = match db::personal::check(schema, conn, personal, run_id, rewrite).await {
            Ok(plan) => plan,
            Err(e) => {
                return Prepared::Refused(match e.downcast::<db::personal::Disagrees>() {
                    Ok(why) => Failure::Config(why.0),
                    Err(e) => e.context("checking the personal-data mode").into(),
                })
            }
        };
        for stream in streams {
            if let Err(e) = stream.prepare(self, conn).await {
                return Prepared::Refused(e);
            }
        }
        let settings = self.config.ledger_settings();
        if let Err(e) = state::start_run(schema, conn, run_id, &settings).await {
            let e = anyhow::Error::new(e).context("recording the run");
            return Prepared::Refused(e.into());
        }
        tracing::info!(timezone = self.config.timezone.name(), "sync started");
        match db::forget::suppression(schema, conn).await {
            Ok(list) => {
                let _ = self.suppression.set(list);
            }
            Err(e) => {
                let e = anyhow::Error::new(e).context("reading the suppression list");
                return Prepared::Failed(e.into());
            }
        }
        if let db::personal::Plan::Rewrite(plan) = plan {
            let halt = &self.halt;
            match db::personal::rewrite(schema, conn, personal, plan, run_id, halt).await {
                Ok(Some(done)) => tracing::info!(
                    rows = done.rows,
                    rejected = done.rejected,
                    seconds = format!("{:.1}", done.seconds),
                    "stored personal data rewritten"
                ),
                Ok(None) => return Prepared::Failed(Failure::Interrupted),
                Err(e) => {
                    let e = e.context("rewriting the stored personal data");
                    return Prepared::Failed(e.into());
                }
            }
        }
        Prepared::Ready
    }

    /// Starts every stream; returns what those within the run came to, and the tasks of those
    /// that go on after it.
    async fn sync_streams(
        &self,
        lock: &db::RunLock,
        listed: &Listed,
        streams: &[Box<dyn Stream>],
    ) -> (Vec<Ended>, Vec<JoinHandle<Ended>>) {
        let (reads_done, _) = tokio::sync::watch::channel(false);
        let shared = Shared {
            run: self,
            lock,
            listed,
            reads_done: &reads_done,
        };
        let mut within = Vec::new();
        let mut beyond = Vec::new();
        for stream in streams {
            match stream.sync(&shared) {
                Synced::Within(future) => within.push(future),
                Synced::Beyond(task) => beyond.push(task),
            }
        }
        (futures::future::join_all(within).await, beyond)
    }

    /// Refuses, before anything is stored, a complete list that would mark most of the stored
    /// campaigns deleted ([`guard`]); only a list that marks deletions is judged.
    async fn guard(
        &self,
        lock: &db::RunLock,
        listed: &[crate::model::campaign::CampaignRow],
        complete: bool,
    ) -> Result<(), Failure> {
        let mut session = lock.live_session().await?;
        guard::judge(&self.config, &mut session, listed, complete).await
    }

    /// Records the run's end in the ledger.
    async fn finish(
        &self,
        lock: &db::RunLock,
        result: &Result<(), Failure>,
        mut totals: RunTotals,
        started: std::time::Instant,
    ) -> Result<RunReport, Failure> {
        let stats = &self.api.stats;
        totals.requests = ApiStats::get(&stats.requests);
        totals.rate_limited = ApiStats::get(&stats.rate_limited);
        totals.retries = ApiStats::get(&stats.retries);
        let (outcome, error) = match result {
            Ok(()) if totals.users.rows_rejected > 0 => (Outcome::Partial, None),
            Ok(()) => (Outcome::Success, None),
            Err(e @ Failure::Interrupted) => (Outcome::Interrupted, Some(e.one_line())),
            Err(e @ Failure::Transient(_)) if totals.users.campaigns_synced > 0 => {
                (Outcome::Partial, Some(e.one_line()))
            }
            Err(e) => (Outcome::Failed, Some(e.one_line())),
        };
        state::finish_run(
            &self.config.schema,
            &mut *lock.live_session().await?,
            self.run_id,
            outcome,
            &totals,
            error.as_deref(),
        )
        .await
        .context("recording the run's end")?;
        let report = RunReport {
            run_id: self.run_id,
            outcome,
            totals,
            seconds: started.elapsed().as_secs_f64(),
        };
        let users = &report.totals.users;
        tracing::info!(
            run_id = %self.run_id,
            outcome = outcome.as_str(),
            campaigns = users.campaigns_synced,
            requests = report.totals.requests,
            rows_received = users.rows_received,
            inserted = users.rows_inserted,
            updated = users.rows_updated,
            seconds = format!("{:.1}", report.seconds),
            "sync finished"
        );
        Ok(report)
    }
}

/// Writes or pushes the run's metrics when asked to; trouble here never fails the run, and a
/// push gets [`metrics::PUSH_TIME`], or two seconds once the run is being stopped.
async fn export_metrics(
    config: &SyncConfig,
    report: &RunReport,
    result: &Result<(), Failure>,
    stop: &CancellationToken,
) {
    if config.metrics_file.is_none() && config.pushgateway.is_none() {
        return;
    }
    let code = result
        .as_ref()
        .err()
        .map_or(crate::error::code::SUCCESS, Failure::code);
    let text = metrics::render(report, code, config.schema.name());
    if let Some(path) = &config.metrics_file {
        if let Err(e) = metrics::write_textfile(path, &text) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the metrics file");
        }
    }
    if let Some(url) = &config.pushgateway {
        let time = if stop.is_cancelled() {
            std::time::Duration::from_secs(2)
        } else {
            metrics::PUSH_TIME
        };
        let pushed = tokio::select! {
            pushed = tokio::time::timeout(time, metrics::push(url, text, config.schema.name())) => {
                pushed.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {time:?}")))
            }
            () = stop.cancelled(), if !stop.is_cancelled() => {
                Err(anyhow::anyhow!("stopped by a signal"))
            }
        };
        if let Err(e) = pushed {
            tracing::warn!(error = %e, "could not push metrics");
        }
    }
}
