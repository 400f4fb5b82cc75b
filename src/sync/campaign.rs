//! Reading the campaigns of a run: in parallel, biggest first, each from its checkpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::api::{ApiClient, ApiError, ApiStats};
use crate::config::SyncConfig;
use crate::db::campaigns;
use crate::db::state::{self, Checkpoint};
use crate::db::{writer, KeptSession};
use crate::error::Failure;
use crate::memory::MemoryBudget;
use crate::model::campaign::CampaignRow;
use crate::model::run::RunTotals;
use crate::model::user::Rejected;
use crate::model::{time, window};
use crate::sync::batch::BatchWriter;
use crate::sync::list;
use crate::sync::scan::{self, CampaignReport, ScanError, Scanner};
use crate::sync::trust::{self, Action};
use crate::sync::Run;

/// What every campaign of one run shares.
struct RunContext {
    config: SyncConfig,
    writer: BatchWriter,
    pool: PgPool,
    api: ApiClient,
    run_id: Uuid,
    halt: CancellationToken,
    /// Where this run stops reading: `--until` or the moment it started.
    end: DateTime<Utc>,
    /// When the campaign list was read.
    listed_at: DateTime<Utc>,
    /// Rows received so far, drawn on a terminal.
    progress: std::sync::OnceLock<ProgressBar>,
    /// Turns true once the campaign list is stored.
    campaigns_stored: tokio::sync::watch::Receiver<bool>,
    /// The campaigns' short statements (settled ranges, deletion marks), on one session.
    lookups: Mutex<KeptSession>,
    /// Slots for the ranges read in a transaction of their own.
    transactions: tokio::sync::Semaphore,
}

/// Writer tasks committing small ranges; two let Postgres use a second core while one commits.
const WRITERS: usize = 2;

/// Ranges of more than a page read at once, each in a transaction of its own: this bounds the
/// connections they take.
pub const RANGE_TRANSACTIONS: usize = 16;

/// Reads the campaigns and returns once every range read is committed. `campaigns_stored`
/// turns true once the campaign list is stored.
pub(crate) async fn read_all(
    run: &Run<'_>,
    (listed, listed_at): (Arc<Vec<CampaignRow>>, DateTime<Utc>),
    checkpoints: HashMap<String, Checkpoint>,
    campaigns_stored: watch::Receiver<bool>,
    totals: &mut RunTotals,
) -> Result<Read, Failure> {
    totals.rows_rejected += set_aside(run, &listed).await?;
    let now = Utc::now();
    let todo = queue(run.config, &listed, &checkpoints, now);
    let end = run.config.until.unwrap_or(now).min(now);
    for q in todo.iter().filter(|q| q.action.reads()) {
        check_plan(run.config, &listed[q.index], q.checkpoint, end)?;
    }
    for q in &todo {
        *match q.action {
            Action::Skip => continue,
            Action::Requested => &mut totals.campaigns_requested,
            Action::New => &mut totals.campaigns_new,
            Action::Untrusted => &mut totals.campaigns_untrusted,
            Action::Changed => &mut totals.campaigns_changed,
            Action::Due => &mut totals.campaigns_due,
        } += 1;
    }
    // The writers' connections open while the first pages are fetched, unless nothing is read.
    let reading = todo.iter().any(|q| q.action.reads());
    let (writer, mut writers) = BatchWriter::start(run.pool.clone(), run.run_id, WRITERS, reading);
    let ctx = Arc::new(RunContext {
        writer,
        config: run.config.clone(),
        pool: run.pool.clone(),
        api: run
            .api
            .clone()
            .with_budget(MemoryBudget::new(run.config.memory_budget)),
        run_id: run.run_id,
        halt: run.halt.clone(),
        end: run.config.until.unwrap_or(now).min(now),
        listed_at,
        progress: std::sync::OnceLock::new(),
        campaigns_stored,
        lookups: Mutex::new(KeptSession::new(run.pool.clone())),
        transactions: tokio::sync::Semaphore::new(RANGE_TRANSACTIONS),
    });
    let read = read_campaigns(&ctx, &listed, todo, totals).await;
    // Every range was committed before its task ended; the writers end with the last handle.
    drop(ctx);
    while writers.join_next().await.is_some() {}
    read
}

/// Keeps the listed campaigns that cannot be stored in `rejected_rows`, each named in a warning;
/// returns how many there are. They are not read, and the list they came in marks no campaign
/// deleted.
async fn set_aside(run: &Run<'_>, listed: &[CampaignRow]) -> Result<u64, Failure> {
    let rejected: Vec<(&str, Rejected)> = listed
        .iter()
        .filter_map(|c| Some((c.display_id.as_str(), c.rejected()?)))
        .collect();
    if rejected.is_empty() {
        return Ok(0);
    }
    for (id, r) in &rejected {
        tracing::warn!(
            campaign = id,
            item = %crate::api::models::preview(r.raw.as_bytes()),
            reason = r.reason,
            "a campaign of the list cannot be stored: kept in linkrunner.rejected_rows and not \
             read; no campaign is marked deleted this run"
        );
    }
    let mut conn = run
        .pool
        .acquire()
        .await
        .context("keeping rejected campaigns")?;
    writer::insert_rejected_campaigns(&mut conn, run.run_id, &rejected)
        .await
        .context("keeping rejected campaigns")?;
    Ok(rejected.len() as u64)
}

/// What reading the campaigns leaves for the end of the run.
pub(crate) struct Read {
    /// Confirmed current by their trusted, unchanged counters.
    pub skipped: Vec<String>,
    pub first_error: Option<anyhow::Error>,
}

/// A campaign waiting to be read, with what the list and its checkpoint say of it.
#[derive(Clone, Copy)]
struct Queued {
    /// Its place in the campaign list.
    index: usize,
    checkpoint: Option<Checkpoint>,
    /// Whether and why it is read.
    action: Action,
    /// Rows its counter says are new.
    expected: u64,
}

/// The campaigns to read, biggest first, so the run does not end waiting on one of them alone.
fn queue(
    config: &SyncConfig,
    listed: &[CampaignRow],
    checkpoints: &HashMap<String, Checkpoint>,
    now: DateTime<Utc>,
) -> Vec<Queued> {
    let wanted: HashSet<&str> = config.campaigns.iter().map(String::as_str).collect();
    for id in &wanted {
        if !listed.iter().any(|c| c.display_id == *id) {
            tracing::warn!(
                campaign = id,
                "--campaign not in the campaign list; skipped"
            );
        }
    }
    let mut todo = listed
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_storable())
        .filter(|(_, c)| wanted.is_empty() || wanted.contains(c.display_id.as_str()))
        .map(|(index, c)| {
            let checkpoint = checkpoints.get(&c.display_id).copied();
            let action = trust::decide(config, c, checkpoint, now);
            Queued {
                index,
                checkpoint,
                action,
                expected: if action.reads() {
                    new_rows(c, checkpoint)
                } else {
                    0
                },
            }
        })
        .collect::<Vec<_>>();
    todo.sort_by_key(|q| std::cmp::Reverse(q.expected));
    todo
}

/// Reads the queued campaigns, up to `--concurrency` at a time.
async fn read_campaigns(
    ctx: &Arc<RunContext>,
    listed: &Arc<Vec<CampaignRow>>,
    todo: Vec<Queued>,
    totals: &mut RunTotals,
) -> Result<Read, Failure> {
    let config = &ctx.config;
    // The list's counters say roughly how many rows are to come, which gives the bar an ETA.
    let expected_total: u64 = todo.iter().map(|q| q.expected).sum();
    let campaigns = todo.len();
    let progress = progress_bar(config.progress, expected_total);
    ctx.progress.set(progress.clone()).ok();
    let mut done = 0;
    let mut read = Read {
        skipped: Vec::new(),
        first_error: None,
    };
    // Campaigns run as tasks of their own so that parsing and converting pages spreads over
    // every core; dropping the set (an early return) aborts the ones still running. Their rows
    // draw on the run's memory budget as each page arrives, so however many campaigns are read
    // at once, and however large their rows, what they hold stays within it.
    let mut todo = todo.into_iter();
    let mut running = JoinSet::new();
    let mut start = |running: &mut JoinSet<_>| {
        while running.len() < config.concurrency {
            let Some(q) = todo.next() else {
                return;
            };
            let (ctx, listed) = (ctx.clone(), listed.clone());
            let span = tracing::info_span!("campaign", campaign = %listed[q.index].display_id);
            running.spawn(
                async move {
                    let campaign = &listed[q.index];
                    (
                        q,
                        sync_campaign(&ctx, campaign, q.checkpoint, q.action).await,
                    )
                }
                .instrument(span),
            );
        }
    };
    start(&mut running);
    while let Some(joined) = running.join_next().await {
        let (q, result) = joined.context("a campaign task failed")?;
        let campaign = &listed[q.index].display_id;
        start(&mut running);
        done += 1;
        let requests = ApiStats::get(&ctx.api.stats.requests);
        let rate = requests as f64 / progress.elapsed().as_secs_f64().max(0.001);
        progress.set_message(format!(
            "campaigns {done}/{campaigns}, {requests} requests ({rate:.1}/s)"
        ));
        if let Err(stop) = account(campaign, result, totals, &mut read) {
            progress.finish_and_clear();
            return Err(stop);
        }
    }
    progress.finish_and_clear();
    Ok(read)
}

/// Adds one campaign's outcome to the run's; an error that every other campaign would meet
/// too (a refused key, a grant or a table to fix) ends the run.
fn account(
    campaign: &str,
    result: Result<CampaignReport, ScanError>,
    totals: &mut RunTotals,
    read: &mut Read,
) -> Result<(), Failure> {
    match result {
        Ok(report) => {
            totals.campaigns_synced += 1;
            if report.skipped {
                totals.campaigns_skipped += 1;
                read.skipped.push(campaign.to_owned());
            }
            totals.rows_received += report.rows_received;
            totals.rows_inserted += report.inserted;
            totals.rows_updated += report.updated;
            totals.rows_rejected += report.rejected;
        }
        Err(ScanError::Stopped) => {}
        Err(ScanError::Api(e @ ApiError::Unauthorized { .. })) => return Err(list::api_failure(e)),
        Err(ScanError::Db(e)) if crate::refusal::why(&e).is_some() => {
            return Err(Failure::database(e, &format!("campaign {campaign}")));
        }
        Err(e) => {
            totals.campaigns_failed += 1;
            tracing::error!(campaign, error = %e, "campaign failed; the next run retries it");
            read.first_error
                .get_or_insert(anyhow::anyhow!("campaign {campaign}: {e}"));
        }
    }
    Ok(())
}
/// Plans one campaign's windows from its checkpoint and reads them in order; one the `action`
/// skips is only reported.
async fn sync_campaign(
    ctx: &RunContext,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    action: Action,
) -> Result<CampaignReport, ScanError> {
    let id = campaign.display_id.as_str();
    let mut report = CampaignReport::default();
    if !action.reads() {
        report.skipped = true;
        return Ok(report);
    }
    match read_campaign(ctx, campaign, checkpoint, &mut report).await {
        Err(ScanError::Api(ApiError::NotFound)) => {
            tracing::info!(
                campaign = id,
                "campaign answered 404; marked deleted, its rows kept"
            );
            // Storing the list clears deletion marks, so this one must come after it.
            let _ = ctx
                .campaigns_stored
                .clone()
                .wait_for(|stored| *stored)
                .await;
            ctx.lookups
                .lock()
                .await
                .run(async |conn| campaigns::mark_deleted(conn, id).await)
                .await?;
        }
        other => other?,
    }
    Ok(report)
}

/// Reads the campaign's unsettled windows from its checkpoint up to the run's end.
async fn read_campaign(
    ctx: &RunContext,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    report: &mut CampaignReport,
) -> Result<(), ScanError> {
    let RunContext {
        config,
        pool,
        api,
        run_id,
        halt,
        end,
        ..
    } = ctx;
    let (run_id, end) = (*run_id, *end);
    let id = campaign.display_id.as_str();
    let start = start_of_plan(config, campaign, checkpoint);
    let planned = window::plan(config.timezone, config.window, start, end);
    let Some(first) = planned.first() else {
        return Ok(());
    };
    let settled = if config.rescan || checkpoint.is_none() {
        Vec::new()
    } else {
        ctx.lookups
            .lock()
            .await
            .run(async |conn| {
                state::settled_ranges(conn, id, first.start, end, config.lookback).await
            })
            .await?
    };
    // Read up to the run's end: the last range's commit also judges the counter.
    let verify = match config.until {
        Some(_) => None,
        None => Some(verify(ctx, campaign, checkpoint, first.start, report).await?),
    };
    let scanner = Scanner {
        api,
        pool,
        writer: &ctx.writer,
        run_id,
        campaign: id,
        run_from: first.start,
        page_size: config.page_size.into(),
        screen: false.into(),
        halt,
        progress: ctx.progress.get(),
        pages_per_scan: config.pages_per_scan,
        stored_until: std::sync::Mutex::new(checkpoint.map(|c| c.synced_until)),
        transactions: &ctx.transactions,
        verify,
    };
    let runs = scan::unsettled_runs(&planned, &settled);
    for (i, run) in runs.iter().enumerate() {
        scanner.run(run, i + 1 == runs.len(), report).await?;
    }
    if let (true, Some(verify)) = (runs.is_empty(), verify) {
        ctx.writer.verified(id, verify).await?;
    }
    tracing::debug!(
        campaign = id,
        scans = report.scans,
        rows = report.rows_received,
        "campaign synced"
    );
    Ok(())
}

/// What the campaign's counter is judged against once it is read to the run's end. The stored
/// rows are counted when they reach back to the campaign's creation; otherwise (history
/// synced with `--since`) one request asks for the total over its whole life.
async fn verify(
    ctx: &RunContext,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    run_from: DateTime<Utc>,
    report: &mut CampaignReport,
) -> Result<state::Verify, ApiError> {
    let stored_from = checkpoint.map_or(run_from, |k| k.covered_from.min(run_from));
    let whole = campaign.created_at.is_some_and(|c| stored_from <= c);
    let counted = if whole {
        None
    } else {
        let origin = campaign.created_at.unwrap_or_else(time::fallback_origin);
        report.requests += 1;
        let page = ctx
            .api
            .attributed_users(&campaign.display_id, origin, ctx.listed_at, 1, 1)
            .await?;
        Some(page.total as i64)
    };
    Ok(state::Verify {
        counter: campaign.attributed_users,
        listed_at: ctx.listed_at,
        counted,
        created_at: campaign.created_at,
        probation: ctx.config.full_scan_every,
    })
}

/// Rows the campaign list's counter says are new since the campaign was last read.
pub(crate) fn new_rows(campaign: &CampaignRow, checkpoint: Option<Checkpoint>) -> u64 {
    let counter = campaign.attributed_users.unwrap_or(0).max(0) as u64;
    let at_sync = checkpoint
        .and_then(|k| k.counter_at_sync)
        .unwrap_or(0)
        .max(0) as u64;
    counter.saturating_sub(at_sync)
}

/// Where a campaign's reading starts: `--since`, else the checkpoint less the lookback, else
/// the campaign's creation; never before [`time::earliest`].
pub(crate) fn start_of_plan(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
) -> DateTime<Utc> {
    let start = match (config.since, checkpoint) {
        (Some(since), _) => Some(since),
        (None, Some(c)) => c.synced_until.checked_sub_signed(config.lookback),
        (None, None) => Some(campaign.created_at.unwrap_or_else(time::fallback_origin)),
    };
    start.map_or(time::earliest(), |t| t.max(time::earliest()))
}

/// Refuses a campaign whose plan up to `end` would hold more than [`window::MAX_WINDOWS`]
/// windows, before any is made: a configuration problem (`--window` too short for its
/// history), the same on every run.
pub(crate) fn check_plan(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    end: DateTime<Utc>,
) -> Result<(), Failure> {
    let start = start_of_plan(config, campaign, checkpoint);
    let n = window::most_windows(config.window, start, end);
    if n <= window::MAX_WINDOWS {
        return Ok(());
    }
    Err(Failure::Config(format!(
        "campaign {}: reading from {} in windows of {} makes up to {n} windows, more than {}: use a longer --window, or --since to start later",
        crate::terminal::printable(&campaign.display_id),
        start.format("%Y-%m-%d %H:%M:%SZ"),
        time::human(config.window.nominal()),
        window::MAX_WINDOWS
    )))
}

/// A bar over the expected rows, on a terminal only (never under cron or with JSON logs).
fn progress_bar(enabled: bool, expected_rows: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(expected_rows.max(1));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos}/{human_len} rows [{bar:30}] {msg}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::ClientSettings;
    use secrecy::SecretString;

    pub(crate) fn config() -> SyncConfig {
        let api = ClientSettings {
            base_url: "http://127.0.0.1:9/api/v1".parse().unwrap(),
            api_key: SecretString::from("k"),
            rps: 10.0,
            timeout: std::time::Duration::from_secs(1),
            max_retries: 0,
            retry_min_delay: std::time::Duration::from_secs(1),
            retry_max_delay: std::time::Duration::from_secs(1),
        };
        SyncConfig {
            concurrency: 1,
            progress: false,
            ..SyncConfig::with_defaults(api, chrono_tz::UTC)
        }
    }

    pub(crate) fn campaign(counter: Option<i64>) -> CampaignRow {
        let raw = serde_json::json!({"display_id": "abc", "attributed_users": counter});
        CampaignRow::from_wire(&serde_json::value::to_raw_value(&raw).unwrap(), false)
    }
}
