//! One sync run: list campaigns, plan each campaign's windows, read and commit them.

pub mod batch;
pub mod campaign;
mod guard;
pub mod list;
mod lookup;
pub mod plan;
mod progress;
pub mod queue;
mod range;
pub(crate) mod reporting;
mod retry;
pub mod scan;
mod scanner;
mod sink;
pub mod trust;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::api::{ApiClient, ApiStats};
use crate::config::SyncConfig;
use crate::db;
use crate::db::state::{self, Checkpoint};
use crate::error::{self, Failure};
use crate::metrics;
use crate::model::campaign::CampaignRow;
pub use crate::model::run::{LookupTotals, Outcome, RunReport, RunTotals};
use crate::personal::Suppression;
use crate::sync::campaign::Read;
pub(crate) use crate::sync::list::fetch_campaigns;
pub(crate) use crate::sync::queue::start_of_plan;

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
    let (report, result, reporting) = match ApiClient::new(config.api.clone()) {
        Err(e) => (None, Err(Failure::Config(e.to_string())), None),
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
            run.locked(&lock)
                .instrument(tracing::info_span!("run", %run_id))
                .await
        }
    };
    lock.release().await;
    // The Reporting API's minutes go on without the run lock.
    let (report, result) = match reporting {
        Some(task) => with_reporting(report, result, task).await,
        None => (report, result),
    };
    // After the lock is let go: a Pushgateway that never answers must not keep the next run out.
    if let Some(report) = &report {
        export_metrics(config, report, &result, &stop).await;
    }
    result.and(report.ok_or_else(|| Failure::Transient(anyhow::anyhow!("the run did not start"))))
}

/// The run's report and outcome with its reporting's: the reporting figures added, and the
/// worse of the two failures the run's ([`error::worst`]).
async fn with_reporting(
    mut report: Option<RunReport>,
    result: Result<(), Failure>,
    task: tokio::task::JoinHandle<reporting::Reported>,
) -> (Option<RunReport>, Result<(), Failure>) {
    let reported = task.await.unwrap_or_else(|e| {
        let e = anyhow::anyhow!("the reporting task failed: {e}");
        reporting::Reported::nothing(Err(Failure::Transient(e)))
    });
    if let Some(report) = &mut report {
        report.totals.reporting = reported.totals;
    }
    (report, error::worst(result, reported.result))
}

/// What every part of one run shares; cheap to clone.
#[derive(Clone)]
pub(crate) struct Run {
    pub config: Arc<SyncConfig>,
    pub pool: PgPool,
    pub api: ApiClient,
    pub run_id: Uuid,
    pub halt: CancellationToken,
    /// Where the run's progress bars are drawn.
    pub bars: indicatif::MultiProgress,
    /// The people `forget` erased, read once the run holds the lock.
    pub suppression: Arc<std::sync::OnceLock<Suppression>>,
}

impl Run {
    /// The run, once it holds the lock: its report once it is in the ledger, its outcome, and
    /// its reading of the Reporting API when one started, which goes on after.
    async fn locked(
        &self,
        lock: &db::RunLock,
    ) -> (
        Option<RunReport>,
        Result<(), Failure>,
        Option<tokio::task::JoinHandle<reporting::Reported>>,
    ) {
        let started = std::time::Instant::now();
        // The campaign list is read while the database is made ready; neither waits on the
        // other.
        let mut conn = lock.session().await;
        if let Err(e) = self.check_sources(&mut conn).await {
            return (None, Err(e), None);
        }
        let listed_at = chrono::Utc::now();
        let (listed, prepared) = tokio::join!(fetch_campaigns(&self.api), self.prepare(&mut conn));
        drop(conn);
        let (recorded, checkpoints) = prepared;
        if !recorded {
            // Not in the ledger: nothing to finish there.
            return (None, checkpoints.map(|_| ()), None);
        }

        let mut totals = RunTotals::default();
        let mut reporting = None;
        let mut result = match (listed, checkpoints) {
            (Ok((listed, complete)), Ok(checkpoints)) => {
                match self.guard(lock, &listed, complete).await {
                    Ok(()) => {
                        let created = listed.iter().map(|c| c.created_at).collect();
                        reporting = reporting::start(self, created);
                        let listed = (listed, listed_at, complete);
                        self.sync_all(lock, listed, checkpoints, &mut totals).await
                    }
                    Err(e) => Err(e),
                }
            }
            (_, Err(e)) | (Err(e), _) => Err(e),
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
        let report = match self.finish(lock, &result, totals, started).await {
            Ok(report) => report,
            Err(e) => return (None, Err(e), reporting),
        };
        let result = match result {
            Ok(()) if report.totals.rows_rejected > 0 => Err(Failure::Partial(format!(
                "{} rows could not be read and were kept in {}.rejected_rows (run {})",
                report.totals.rows_rejected, self.config.schema, self.run_id
            ))),
            other => other,
        };
        (Some(report), result, reporting)
    }

    /// Migrates, records the run in the ledger and reads the checkpoints; `true` once the run
    /// is in the ledger, which it must then leave finished.
    async fn prepare(
        &self,
        conn: &mut PgConnection,
    ) -> (bool, Result<HashMap<String, Checkpoint>, Failure>) {
        if let Err(e) = db::prepare(conn, &self.config.schema).await {
            return (false, Err(e.into()));
        }
        let personal = &self.config.personal;
        let (schema, run_id) = (&self.config.schema, self.run_id);
        let rewrite = self.config.rewrite_personal_data;
        let plan = match db::personal::check(schema, conn, personal, run_id, rewrite).await {
            Ok(plan) => plan,
            Err(e) => {
                return match e.downcast::<db::personal::Disagrees>() {
                    Ok(why) => (false, Err(Failure::Config(why.0))),
                    Err(e) => (
                        false,
                        Err(e.context("checking the personal-data mode").into()),
                    ),
                }
            }
        };
        if let Some(settings) = &self.config.reporting {
            if let Err(e) = reporting::check_timezone(self, conn, settings).await {
                return (false, Err(e));
            }
        }
        if let Err(e) = state::start_run(
            &self.config.schema,
            conn,
            self.run_id,
            &self.config.ledger_settings(),
        )
        .await
        {
            return (
                false,
                Err(Failure::from(
                    anyhow::Error::new(e).context("recording the run"),
                )),
            );
        }
        tracing::info!(timezone = self.config.timezone.name(), "sync started");
        match db::forget::suppression(schema, conn).await {
            Ok(list) => {
                let _ = self.suppression.set(list);
            }
            Err(e) => {
                let e = anyhow::Error::new(e).context("reading the suppression list");
                return (true, Err(e.into()));
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
                Ok(None) => return (true, Err(Failure::Interrupted)),
                Err(e) => {
                    return (
                        true,
                        Err(e.context("rewriting the stored personal data").into()),
                    )
                }
            }
        }
        let checkpoints = state::checkpoints(&self.config.schema, conn)
            .await
            .context("reading checkpoints");
        let checkpoints = checkpoints.map(|c| c.into_iter().collect());
        (true, checkpoints.map_err(Failure::from))
    }

    /// Stores the campaign list and reads the campaigns.
    async fn sync_all(
        &self,
        lock: &db::RunLock,
        (listed, listed_at, complete): (Vec<CampaignRow>, chrono::DateTime<chrono::Utc>, bool),
        checkpoints: HashMap<String, Checkpoint>,
        totals: &mut RunTotals,
    ) -> Result<(), Failure> {
        totals.campaigns_listed = listed.len() as u64;
        let listed = Arc::new(listed);
        let mark_deleted = complete && self.config.campaigns.is_empty();
        // Nothing a campaign's reading writes depends on the campaigns table, so the list is
        // stored while the campaigns are read; only a 404's deletion mark waits for it.
        let (stored, campaigns_stored) = tokio::sync::watch::channel(false);
        let store = self.store_list(lock, &listed, mark_deleted, stored);
        // Look-ups take the requests the reads leave, and ask once more after them.
        let (reads_done, reading_ended) = tokio::sync::watch::channel(false);
        let read = async {
            let read = campaign::read_all(
                self,
                (listed.clone(), listed_at),
                checkpoints,
                campaigns_stored,
                totals,
            )
            .await;
            reads_done.send_replace(true);
            read
        };
        let (stored, read, looked) = tokio::join!(store, read, self.look_up(reading_ended));
        // Each part's failure is weighed against the others' (`error::worst`), so a look-up
        // endpoint that is not there is not hidden by a campaign that failed, nor the reverse.
        let mut others = Ok(());
        match stored {
            Ok(rejected) => totals.rows_rejected += rejected,
            Err(e) => others = Err(e),
        }
        match looked {
            Ok(looked) => totals.add_lookups(looked),
            Err(e) => others = error::worst(others, Err(e)),
        }
        let Read {
            skipped,
            first_error,
        } = match read {
            Ok(read) => read,
            Err(e) => return error::worst(Err(e), others),
        };
        if others.is_ok() && !skipped.is_empty() {
            state::mark_checked(
                &self.config.schema,
                &mut *lock.live_session().await?,
                &skipped,
            )
            .await
            .context("recording campaigns confirmed by their trusted counters")?;
        }
        let read = match first_error {
            Some(e) => Err(Failure::from(e.context(format!(
                "{} of {} campaigns failed",
                totals.campaigns_failed,
                totals.campaigns_failed + totals.campaigns_synced
            )))),
            None => Ok(()),
        };
        error::worst(read, others)
    }

    /// Refuses, before anything is stored, a complete list that would mark most of the stored
    /// campaigns deleted ([`guard`]); only a list that marks deletions is judged.
    async fn guard(
        &self,
        lock: &db::RunLock,
        listed: &[CampaignRow],
        complete: bool,
    ) -> Result<(), Failure> {
        let mut session = lock.live_session().await?;
        guard::judge(&self.config, &mut session, listed, complete).await
    }

    /// Refuses a `--lookup-from` column that cannot be read, before any request is made.
    async fn check_sources(&self, conn: &mut PgConnection) -> Result<(), Failure> {
        match &self.config.lookups {
            Some(settings) => lookup::check_sources(conn, &settings.sources).await,
            None => Ok(()),
        }
    }

    /// The run's attribution look-ups, when asked for.
    async fn look_up(
        &self,
        reads_done: tokio::sync::watch::Receiver<bool>,
    ) -> Result<LookupTotals, Failure> {
        match &self.config.lookups {
            Some(settings) => lookup::run(self, settings, reads_done).await,
            None => Ok(LookupTotals::default()),
        }
    }

    /// Stores the campaign list, then says so on `stored`.
    async fn store_list(
        &self,
        lock: &db::RunLock,
        listed: &[CampaignRow],
        mark_deleted: bool,
        stored: tokio::sync::watch::Sender<bool>,
    ) -> Result<u64, Failure> {
        let mut session = lock.session().await;
        let result = list::store_campaigns(
            &self.config.schema,
            &mut session,
            self.run_id,
            listed,
            mark_deleted,
        )
        .await;
        stored.send_replace(true);
        result
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
            Ok(()) if totals.rows_rejected > 0 => (Outcome::Partial, None),
            Ok(()) => (Outcome::Success, None),
            Err(e @ Failure::Interrupted) => (Outcome::Interrupted, Some(e.one_line())),
            Err(e @ Failure::Transient(_)) if totals.campaigns_synced > 0 => {
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
        tracing::info!(
            run_id = %self.run_id,
            outcome = outcome.as_str(),
            campaigns = report.totals.campaigns_synced,
            requests = report.totals.requests,
            rows_received = report.totals.rows_received,
            inserted = report.totals.rows_inserted,
            updated = report.totals.rows_updated,
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
