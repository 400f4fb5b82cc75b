//! Reading the campaigns of a run: in parallel, biggest first, each from its checkpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::api::budget::MemoryBudget;
use crate::api::{ApiError, ApiStats};
use crate::db::campaigns;
use crate::db::state::{self, Checkpoint};
use crate::db::{writer, KeptSession};
use crate::error::Failure;
use crate::model::campaign::CampaignRow;
use crate::model::run::UserTotals;
use crate::model::time;
use crate::model::user::Rejected;
use crate::model::window::{self, Window};
use crate::sync::batch::{BatchWriter, Target};
use crate::sync::list;
use crate::sync::progress::Progress;
use crate::sync::queue::{self, start_of_plan, Queued};
use crate::sync::run::Run;
use crate::sync::scan::{self, CampaignReport, ScanError, Scanner};
use crate::sync::trust::Action;

/// What every campaign being read shares: the run's parts, with the API client drawing on the
/// run's memory budget, and the reading's own.
struct Reader {
    run: Run,
    writer: BatchWriter,
    /// Where this run stops reading: `--until` or the moment it started.
    end: DateTime<Utc>,
    /// When the campaign list was read.
    listed_at: DateTime<Utc>,
    /// Rows received so far, drawn on a terminal.
    progress: std::sync::OnceLock<ProgressBar>,
    /// Turns true once the campaign list is stored.
    campaigns_stored: watch::Receiver<bool>,
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
    run: &Run,
    (listed, listed_at): (Arc<Vec<CampaignRow>>, DateTime<Utc>),
    (checkpoints, pushed): (HashMap<String, Checkpoint>, HashSet<String>),
    campaigns_stored: watch::Receiver<bool>,
    totals: &mut UserTotals,
) -> Result<Read, Failure> {
    totals.rows_rejected += set_aside(run, &listed).await?;
    let now = Utc::now();
    let todo = queue::queue(&run.config, &listed, &checkpoints, &pushed, now);
    let end = run.config.until.unwrap_or(now).min(now);
    for q in todo.iter().filter(|q| q.action.reads()) {
        queue::check_plan(&run.config, &listed[q.index], q.checkpoint, end)?;
    }
    queue::count_actions(&todo, totals);
    // The writers' connections open while the first pages are fetched, unless nothing is read.
    let reading = todo.iter().any(|q| q.action.reads());
    let (writer, mut writers) = BatchWriter::start(
        run.pool.clone(),
        Target {
            run_id: run.run_id,
            schema: run.config.schema.clone(),
        },
        WRITERS,
        reading,
    );
    let budget = MemoryBudget::new(run.config.memory_budget);
    let ctx = Arc::new(Reader {
        run: Run {
            api: run.api.clone().with_budget(budget),
            ..run.clone()
        },
        writer,
        end,
        listed_at,
        progress: std::sync::OnceLock::new(),
        campaigns_stored,
        lookups: Mutex::new(KeptSession::new(run.pool.clone())),
        transactions: tokio::sync::Semaphore::new(RANGE_TRANSACTIONS),
    });
    let reasons: Vec<(String, &str)> = todo
        .iter()
        .map(|q| (listed[q.index].display_id.clone(), q.action.word()))
        .collect();
    let read = read_campaigns(&ctx, &listed, todo, totals).await;
    // Every range was committed before its task ended; the writers end with the last handle.
    let recorded = match read {
        Ok(_) => record_reasons(&ctx, &reasons).await,
        Err(_) => Ok(()),
    };
    drop(ctx);
    while writers.join_next().await.is_some() {}
    recorded?;
    read
}

/// Notes why each campaign was read, for `status`.
async fn record_reasons(ctx: &Reader, reasons: &[(String, &str)]) -> Result<(), Failure> {
    let reasons: Vec<(&str, &str)> = reasons.iter().map(|(c, w)| (c.as_str(), *w)).collect();
    let schema = &ctx.run.config.schema;
    ctx.lookups
        .lock()
        .await
        .run(async |conn| state::record_reasons(schema, conn, &reasons).await)
        .await
        .map_err(|e| Failure::database(e, "recording why campaigns were read"))
}

/// Keeps the listed campaigns that cannot be stored in `rejected_rows`, each named in a warning;
/// returns how many there are. They are not read, and the list they came in marks no campaign
/// deleted.
async fn set_aside(run: &Run, listed: &[CampaignRow]) -> Result<u64, Failure> {
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
            "a campaign of the list cannot be stored: kept in rejected_rows and not read; \
             no campaign is marked deleted this run"
        );
    }
    let mut conn = run
        .pool
        .acquire()
        .await
        .context("keeping rejected campaigns")?;
    writer::insert_rejected_campaigns(&run.config.schema, &mut conn, run.run_id, &rejected)
        .await
        .context("keeping rejected campaigns")?;
    Ok(rejected.len() as u64)
}

/// What reading the campaigns leaves for the end of the run.
pub(crate) struct Read {
    /// Confirmed current by their trusted, unchanged counters.
    pub skipped: Vec<String>,
    /// Read to the run's end.
    pub read: Vec<String>,
    pub first_error: Option<anyhow::Error>,
}

/// Reads the queued campaigns, up to `--concurrency` at a time.
async fn read_campaigns(
    ctx: &Arc<Reader>,
    listed: &Arc<Vec<CampaignRow>>,
    todo: Vec<Queued>,
    totals: &mut UserTotals,
) -> Result<Read, Failure> {
    // The list's counters say roughly how many rows are to come, which gives the bar an ETA.
    let expected: u64 = todo.iter().map(|q| q.expected).sum();
    let mut progress = Progress::new(&ctx.run.bars, expected, todo.len());
    ctx.progress.set(progress.bar().clone()).ok();
    let mut read = Read {
        skipped: Vec::new(),
        read: Vec::new(),
        first_error: None,
    };
    // Campaigns run as tasks of their own so that parsing and converting pages spreads over
    // every core; dropping the set (an early return) aborts the ones still running. Their rows
    // draw on the run's memory budget as each page arrives, so however many campaigns are read
    // at once, and however large their rows, what they hold stays within it.
    let mut todo = todo.into_iter();
    let mut running = JoinSet::new();
    spawn_more(ctx, listed, &mut todo, &mut running);
    let outcome = loop {
        let Some(joined) = running.join_next().await else {
            break Ok(read);
        };
        let (q, result) = joined.context("a campaign task failed")?;
        spawn_more(ctx, listed, &mut todo, &mut running);
        progress.campaign_done(ApiStats::get(&ctx.run.api.stats.requests));
        if let Err(stop) = account(&listed[q.index].display_id, result, totals, &mut read) {
            break Err(stop);
        }
    };
    progress.finish();
    outcome
}

type Running = JoinSet<(Queued, Result<CampaignReport, ScanError>)>;

/// Starts queued campaigns until `--concurrency` of them run.
fn spawn_more(
    ctx: &Arc<Reader>,
    listed: &Arc<Vec<CampaignRow>>,
    todo: &mut impl Iterator<Item = Queued>,
    running: &mut Running,
) {
    while running.len() < ctx.run.config.concurrency {
        let Some(q) = todo.next() else {
            return;
        };
        let (ctx, listed) = (ctx.clone(), listed.clone());
        let span = tracing::info_span!("campaign", campaign = %listed[q.index].display_id);
        let task = async move {
            let campaign = &listed[q.index];
            let result = sync_campaign(&ctx, campaign, q.checkpoint, q.action).await;
            (q, result)
        };
        running.spawn(task.instrument(span));
    }
}

/// Adds one campaign's outcome to the run's; an error that every other campaign would meet
/// too (a refused key, a grant or a table to fix) ends the run.
fn account(
    campaign: &str,
    result: Result<CampaignReport, ScanError>,
    totals: &mut UserTotals,
    read: &mut Read,
) -> Result<(), Failure> {
    match result {
        Ok(report) => {
            totals.campaigns_synced += 1;
            if report.skipped {
                totals.campaigns_skipped += 1;
                read.skipped.push(campaign.to_owned());
            } else {
                read.read.push(campaign.to_owned());
            }
            totals.rows_received += report.rows_received;
            totals.rows_inserted += report.inserted;
            totals.rows_updated += report.updated;
            totals.rows_rejected += report.rejected;
            totals.rows_forgotten += report.forgotten;
        }
        Err(ScanError::Stopped) => {}
        Err(ScanError::Api(e @ ApiError::Unauthorized { .. })) => return Err(list::api_failure(e)),
        Err(ScanError::Db(e)) if crate::db::errors::why(&e).is_some() => {
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
    ctx: &Reader,
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
                .run(async |conn| campaigns::mark_deleted(&ctx.run.config.schema, conn, id).await)
                .await?;
        }
        other => other?,
    }
    Ok(report)
}

/// Reads the campaign's unsettled windows from its checkpoint up to the run's end.
async fn read_campaign(
    ctx: &Reader,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    report: &mut CampaignReport,
) -> Result<(), ScanError> {
    let config = &ctx.run.config;
    let id = campaign.display_id.as_str();
    let start = start_of_plan(config, campaign, checkpoint);
    let planned = window::plan(config.timezone, config.window, start, ctx.end);
    let Some(first) = planned.first() else {
        return Ok(());
    };
    let settled = ctx.settled(id, first.start, checkpoint).await?;
    // Read up to the run's end: the last range's commit also judges the counter.
    let verify = match config.until {
        Some(_) => None,
        None => Some(verify(ctx, campaign, checkpoint, first.start, report).await?),
    };
    let scanner = ctx.scanner(id, first.start, checkpoint, verify);
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

impl Reader {
    /// The ranges of the campaign from `from` to the run's end that need no reading; none when
    /// everything is read again (`--rescan`, or nothing stored yet).
    async fn settled(
        &self,
        id: &str,
        from: DateTime<Utc>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Vec<Window>, sqlx::Error> {
        let config = &self.run.config;
        if config.rescan || checkpoint.is_none() {
            return Ok(Vec::new());
        }
        let (end, lookback) = (self.end, config.lookback);
        self.lookups
            .lock()
            .await
            .run(async |conn| {
                state::settled_ranges(&config.schema, conn, id, from, end, lookback).await
            })
            .await
    }

    /// A scanner for the campaign's reading that began at `run_from`.
    fn scanner<'a>(
        &'a self,
        campaign: &'a str,
        run_from: DateTime<Utc>,
        checkpoint: Option<Checkpoint>,
        verify: Option<state::Verify>,
    ) -> Scanner<'a> {
        let Run {
            config,
            pool,
            api,
            run_id,
            halt,
            ..
        } = &self.run;
        Scanner {
            api,
            pool,
            writer: &self.writer,
            schema: &config.schema,
            personal: &config.personal,
            suppression: self.run.suppression.get().copied().unwrap_or_default(),
            run_id: *run_id,
            campaign,
            run_from,
            page_size: config.page_size.into(),
            screen: false.into(),
            halt,
            progress: self.progress.get(),
            pages_per_scan: config.pages_per_scan,
            stored_until: std::sync::Mutex::new(checkpoint.map(|c| c.synced_until)),
            transactions: &self.transactions,
            verify,
        }
    }
}

/// What the campaign's counter is judged against once it is read to the run's end. The stored
/// rows are counted when they reach back to the campaign's creation; otherwise (history
/// synced with `--since`) one request asks for the total over its whole life.
async fn verify(
    ctx: &Reader,
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
            .run
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
        probation: ctx.run.config.full_scan_every,
    })
}
