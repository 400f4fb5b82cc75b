//! One sync run: list campaigns, plan each campaign's windows, read and commit them.

pub mod plan;
pub mod scan;
pub mod span;
pub mod windows;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::api::client::MAX_LIMIT;
use crate::api::{ApiClient, ApiError, ApiStats};
use crate::config::SyncConfig;
use crate::db::batch::BatchWriter;
use crate::db::campaigns::{self, CampaignRow};
use crate::db::state::{self, Checkpoint, RunTotals};
use crate::db::{self};
use crate::error::Failure;
use crate::metrics;
use crate::sync::scan::{CampaignReport, ScanError, Scanner};

/// Writer tasks committing small ranges; two let Postgres use a second core while one commits.
const WRITERS: usize = 2;

/// What a finished run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    pub run_id: Uuid,
    pub outcome: String,
    pub totals: RunTotals,
    pub seconds: f64,
}

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
    let lock = db::try_lock(pool, halt.clone())
        .await?
        .ok_or(Failure::Locked)?;
    let result = locked_run(config, pool, &halt, &lock).await;
    lock.release().await;
    result
}

/// The run, once it holds the lock.
async fn locked_run(
    config: &SyncConfig,
    pool: &PgPool,
    halt: &CancellationToken,
    lock: &db::RunLock,
) -> Result<RunReport, Failure> {
    let started = std::time::Instant::now();
    db::migrate(pool).await?;
    let api = ApiClient::new(config.api.clone()).map_err(|e| Failure::Config(e.to_string()))?;
    let run_id = Uuid::new_v4();
    // Every log line of the run carries its id; campaign and range spans nest below it.
    let span = tracing::info_span!("run", %run_id);
    run_logged(config, pool, halt, lock, api, run_id, started)
        .instrument(span)
        .await
}

async fn run_logged(
    config: &SyncConfig,
    pool: &PgPool,
    halt: &CancellationToken,
    lock: &db::RunLock,
    api: ApiClient,
    run_id: Uuid,
    started: std::time::Instant,
) -> Result<RunReport, Failure> {
    state::start_run(pool, run_id, &config.ledger_settings())
        .await
        .context("recording the run")?;
    tracing::info!(timezone = config.timezone.name(), "sync started");

    let mut totals = RunTotals::default();
    let mut result = sync_all(config, pool, &api, run_id, halt, &mut totals).await;
    if halt.is_cancelled() && result.is_ok() {
        result = Err(if lock.lost() {
            Failure::Transient(anyhow::anyhow!(
                "the run lock was lost to another run; stopped"
            ))
        } else {
            Failure::Interrupted
        });
    }
    totals.requests = ApiStats::get(&api.stats.requests);
    totals.rate_limited = ApiStats::get(&api.stats.rate_limited);
    totals.retries = ApiStats::get(&api.stats.retries);
    let (outcome, error) = match &result {
        Ok(()) if totals.rows_rejected > 0 => ("partial", None),
        Ok(()) => ("success", None),
        Err(e @ Failure::Interrupted) => ("interrupted", Some(e.one_line())),
        Err(e @ Failure::Transient(_)) if totals.campaigns_synced > 0 => {
            ("partial", Some(e.one_line()))
        }
        Err(e) => ("failed", Some(e.one_line())),
    };
    state::finish_run(pool, run_id, outcome, &totals, error.as_deref())
        .await
        .context("recording the run's end")?;
    let report = RunReport {
        run_id,
        outcome: outcome.to_string(),
        totals,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        %run_id,
        outcome,
        campaigns = report.totals.campaigns_synced,
        requests = report.totals.requests,
        rows_received = report.totals.rows_received,
        inserted = report.totals.rows_inserted,
        updated = report.totals.rows_updated,
        seconds = format!("{:.1}", report.seconds),
        "sync finished"
    );
    let result = match result {
        Ok(()) if report.totals.rows_rejected > 0 => Err(Failure::Partial(format!(
            "{} rows could not be read and were kept in linkrunner.rejected_rows (run {run_id})",
            report.totals.rows_rejected
        ))),
        other => other,
    };
    export_metrics(config, &report, &result).await;
    result.map(|()| report)
}

/// Writes or pushes the run's metrics when asked to; trouble here never fails the run.
async fn export_metrics(config: &SyncConfig, report: &RunReport, result: &Result<(), Failure>) {
    if config.metrics_file.is_none() && config.pushgateway.is_none() {
        return;
    }
    let code = result
        .as_ref()
        .err()
        .map_or(crate::error::code::SUCCESS, Failure::code);
    let text = metrics::render(report, code);
    if let Some(path) = &config.metrics_file {
        if let Err(e) = metrics::write_textfile(path, &text) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the metrics file");
        }
    }
    if let Some(url) = &config.pushgateway {
        if let Err(e) = metrics::push(url, text).await {
            tracing::warn!(error = %e, "could not push metrics");
        }
    }
}

async fn sync_all(
    config: &SyncConfig,
    pool: &PgPool,
    api: &ApiClient,
    run_id: Uuid,
    halt: &CancellationToken,
    totals: &mut RunTotals,
) -> Result<(), Failure> {
    let now = Utc::now();
    let (writer, mut writers) = BatchWriter::start(pool.clone(), run_id, WRITERS);
    let ctx = Arc::new(RunContext {
        writer,
        config: config.clone(),
        pool: pool.clone(),
        api: api.clone(),
        run_id,
        halt: halt.clone(),
        end: config.until.unwrap_or(now).min(now),
        progress: std::sync::OnceLock::new(),
    });
    let listed = list_campaigns(api, pool, config.campaigns.is_empty()).await?;
    totals.campaigns_listed = listed.len() as u64;
    let checkpoints: HashMap<String, Checkpoint> = state::checkpoints(pool)
        .await
        .context("reading checkpoints")?
        .into_iter()
        .collect();

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
        .into_iter()
        .filter(|c| wanted.is_empty() || wanted.contains(c.display_id.as_str()))
        .map(|c| {
            let checkpoint = checkpoints.get(&c.display_id).copied();
            (c, checkpoint)
        })
        .collect::<Vec<_>>()
        .into_iter();

    // The list's counters say roughly how many rows are to come, which gives the bar an ETA.
    let expected_rows: u64 = todo
        .as_slice()
        .iter()
        .filter(|(c, k)| !unchanged_since_verified(config, c, *k))
        .map(|(c, k)| {
            let counter = c.attributed_users.unwrap_or(0).max(0) as u64;
            counter.saturating_sub(k.and_then(|k| k.counter_at_sync).unwrap_or(0).max(0) as u64)
        })
        .sum();
    let campaigns = todo.len();
    let progress = progress_bar(config.progress, expected_rows);
    ctx.progress.set(progress.clone()).ok();
    let mut done = 0;
    let mut first_error: Option<anyhow::Error> = None;
    let mut skipped = Vec::new();
    // Campaigns run as tasks of their own so that parsing and converting pages spreads over
    // every core; dropping the set (an early return) aborts the ones still running.
    let mut running = JoinSet::new();
    let mut start_next = |running: &mut JoinSet<_>| {
        if let Some((campaign, checkpoint)) = todo.next() {
            let ctx = ctx.clone();
            let span = tracing::info_span!("campaign", campaign = %campaign.display_id);
            running.spawn(
                async move {
                    let result = sync_campaign(&ctx, &campaign, checkpoint).await;
                    (campaign.display_id, result)
                }
                .instrument(span),
            );
        }
    };
    for _ in 0..config.concurrency {
        start_next(&mut running);
    }
    while let Some(joined) = running.join_next().await {
        let (campaign, result) = joined.context("a campaign task failed")?;
        start_next(&mut running);
        done += 1;
        let requests = ApiStats::get(&api.stats.requests);
        let rate = requests as f64 / progress.elapsed().as_secs_f64().max(0.001);
        progress.set_message(format!(
            "campaigns {done}/{campaigns}, {requests} requests ({rate:.1}/s)"
        ));
        match result {
            Ok(report) => {
                totals.campaigns_synced += 1;
                if report.skipped {
                    totals.campaigns_skipped += 1;
                    skipped.push(campaign);
                }
                totals.rows_received += report.rows_received;
                totals.rows_inserted += report.inserted;
                totals.rows_updated += report.updated;
                totals.rows_rejected += report.rejected;
            }
            Err(ScanError::Stopped) => {}
            Err(ScanError::Api(ApiError::Unauthorized { status })) => {
                progress.finish_and_clear();
                return Err(Failure::Auth(format!(
                    "Linkrunner rejected the API key (HTTP {status}); check LINKRUNNER_API_KEY"
                )));
            }
            Err(e) => {
                totals.campaigns_failed += 1;
                tracing::error!(campaign, error = %e, "campaign failed; the next run retries it");
                first_error.get_or_insert(anyhow::anyhow!("campaign {campaign}: {e}"));
            }
        }
    }
    progress.finish_and_clear();
    // Every range was committed before its task ended; the writers end with the last handle.
    drop(ctx);
    while writers.join_next().await.is_some() {}
    state::mark_checked(pool, &skipped)
        .await
        .context("recording campaigns confirmed by their counters")?;
    match first_error {
        Some(e) => Err(Failure::Transient(e.context(format!(
            "{} of {} campaigns failed",
            totals.campaigns_failed,
            totals.campaigns_failed + totals.campaigns_synced
        )))),
        None => Ok(()),
    }
}

/// Reads the whole campaign list and stores it. Deletions are marked only when the list was
/// read completely and the run is not limited to some campaigns.
async fn list_campaigns(
    api: &ApiClient,
    pool: &PgPool,
    may_mark_deleted: bool,
) -> Result<Vec<CampaignRow>, Failure> {
    let (listed, complete) = fetch_campaigns(api).await?;
    store_campaigns(pool, &listed, complete && may_mark_deleted).await?;
    Ok(listed)
}

/// Pages through the campaign list; `true` when one pass saw a steady, complete list.
pub(crate) async fn fetch_campaigns(api: &ApiClient) -> Result<(Vec<CampaignRow>, bool), Failure> {
    let mut seen: HashMap<String, CampaignRow> = HashMap::new();
    let mut complete = false;
    for attempt in 1..=3 {
        let first = api.campaigns(1, MAX_LIMIT).await.map_err(api_failure)?;
        let (expected, pages) = (first.total, first.pages);
        let mut last_total = first.total;
        let mut this_pass = HashSet::new();
        // Each page is typed as it arrives, so the raw pages are never all held at once.
        let mut take = |items: Vec<Box<serde_json::value::RawValue>>| {
            for item in items {
                match CampaignRow::from_wire(&item) {
                    Some(c) => {
                        this_pass.insert(c.display_id.clone());
                        seen.insert(c.display_id.clone(), c);
                    }
                    None => tracing::warn!("campaign without a display_id in the list; skipped"),
                }
            }
        };
        take(first.items);
        for page in 2..=pages {
            let next = api.campaigns(page, MAX_LIMIT).await.map_err(api_failure)?;
            last_total = next.total;
            let short = next.items.len() < MAX_LIMIT as usize;
            take(next.items);
            if short {
                break;
            }
        }
        if last_total == expected && this_pass.len() as u64 >= expected {
            complete = true;
            break;
        }
        tracing::warn!(
            attempt,
            expected,
            seen = this_pass.len(),
            "campaign list moved while paging"
        );
    }
    let mut listed: Vec<CampaignRow> = seen.into_values().collect();
    listed.sort_by(|a, b| a.display_id.cmp(&b.display_id));
    Ok((listed, complete))
}

async fn store_campaigns(
    pool: &PgPool,
    listed: &[CampaignRow],
    mark_deleted: bool,
) -> Result<(), Failure> {
    let mut tx = pool.begin().await.context("storing campaigns")?;
    let changed = campaigns::upsert(&mut tx, listed)
        .await
        .context("storing campaigns")?;
    if mark_deleted {
        let ids: Vec<String> = listed.iter().map(|c| c.display_id.clone()).collect();
        let gone = campaigns::mark_missing_deleted(&mut tx, &ids)
            .await
            .context("marking deleted campaigns")?;
        if gone > 0 {
            tracing::info!(count = gone, "campaigns no longer listed marked deleted");
        }
    }
    tx.commit().await.context("storing campaigns")?;
    tracing::info!(
        listed = listed.len(),
        changed,
        deletions_checked = mark_deleted,
        "campaign list read"
    );
    Ok(())
}

fn api_failure(e: ApiError) -> Failure {
    match e {
        ApiError::Unauthorized { .. } => Failure::Auth(e.to_string()),
        other => Failure::Transient(anyhow::Error::new(other).context("reading the campaign list")),
    }
}

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
    /// Rows received so far, drawn on a terminal.
    progress: std::sync::OnceLock<ProgressBar>,
}

/// Plans one campaign's windows from its checkpoint and reads them in order.
async fn sync_campaign(
    ctx: &RunContext,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
) -> Result<CampaignReport, ScanError> {
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
    let mut report = CampaignReport::default();
    if unchanged_since_verified(config, campaign, checkpoint) {
        report.skipped = true;
        return Ok(report);
    }
    let start = start_of_plan(config, campaign, checkpoint);
    let planned = windows::plan(config.timezone, config.window, start, end);
    let Some(first) = planned.first() else {
        return Ok(report);
    };
    let settled = if config.rescan || checkpoint.is_none() {
        Vec::new()
    } else {
        state::settled_ranges(pool, id, first.start, end, config.lookback).await?
    };
    let scanner = Scanner {
        api,
        pool,
        writer: &ctx.writer,
        run_id,
        campaign: id,
        run_from: first.start,
        page_size: config.page_size,
        halt,
        progress: ctx.progress.get(),
        pages_per_scan: config.pages_per_scan,
        stored_until: std::sync::Mutex::new(checkpoint.map(|c| c.synced_until)),
        // Read up to the run's end: the last range's commit also marks the campaign verified.
        verify: config.until.is_none().then_some(campaign.attributed_users),
    };
    let runs = scan::unsettled_runs(&planned, &settled);
    for (i, run) in runs.iter().enumerate() {
        match scanner.run(run, i + 1 == runs.len(), &mut report).await {
            Err(ScanError::Api(ApiError::NotFound)) => {
                tracing::info!(
                    campaign = id,
                    "campaign answered 404; marked deleted, its rows kept"
                );
                let mut conn = pool.acquire().await?;
                campaigns::mark_deleted(&mut conn, id).await?;
                return Ok(report);
            }
            other => other?,
        }
    }
    if runs.is_empty() && config.until.is_none() {
        ctx.writer.verified(id, campaign.attributed_users).await?;
    }
    tracing::debug!(
        campaign = id,
        scans = report.scans,
        rows = report.rows_received,
        "campaign synced"
    );
    Ok(report)
}

/// Where a campaign's reading starts: `--since`, else the checkpoint less the lookback, else
/// the campaign's creation.
pub(crate) fn start_of_plan(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
) -> DateTime<Utc> {
    match (config.since, checkpoint) {
        (Some(since), _) => since,
        (None, Some(c)) => c.synced_until - config.lookback,
        (None, None) => campaign.created_at.unwrap_or_else(span::fallback_origin),
    }
}

/// Whether the campaign can be skipped: its counter has not moved since a run last read it up
/// to that run's end, and that was less than `--full-scan-every` ago. The interval is spread
/// per campaign over its last quarter, so campaigns verified together do not all come due in
/// the same run.
pub(crate) fn unchanged_since_verified(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
) -> bool {
    let Some(Checkpoint {
        counter_at_sync: Some(counter),
        verified_at: Some(verified_at),
        ..
    }) = checkpoint
    else {
        return false;
    };
    if config.since.is_some() || config.rescan || campaign.attributed_users != Some(counter) {
        return false;
    }
    let spread = campaign
        .display_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    let interval = config.full_scan_every - config.full_scan_every * spread as i32 / 4000;
    Utc::now() - verified_at < interval
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
mod tests {
    use super::*;
    use crate::api::ClientSettings;
    use crate::sync::span::WindowLen;
    use chrono::Duration;
    use secrecy::SecretString;

    fn config() -> SyncConfig {
        SyncConfig {
            api: ClientSettings {
                base_url: "http://127.0.0.1:9/api/v1".parse().unwrap(),
                api_key: SecretString::from("k"),
                rps: 10.0,
                timeout: std::time::Duration::from_secs(1),
                max_retries: 0,
                retry_min_delay: std::time::Duration::from_secs(1),
                retry_max_delay: std::time::Duration::from_secs(1),
            },
            timezone: chrono_tz::UTC,
            window: WindowLen::Days(1),
            lookback: Duration::days(2),
            full_scan_every: Duration::hours(6),
            since: None,
            until: None,
            campaigns: Vec::new(),
            concurrency: 1,
            rescan: false,
            progress: false,
            page_size: 1000,
            pages_per_scan: 20,
            metrics_file: None,
            pushgateway: None,
        }
    }

    fn campaign(counter: Option<i64>) -> CampaignRow {
        let raw = serde_json::json!({"display_id": "abc", "attributed_users": counter});
        CampaignRow::from_wire(&serde_json::value::to_raw_value(&raw).unwrap()).unwrap()
    }

    fn checkpoint(counter: Option<i64>, hours_ago: i64) -> Option<Checkpoint> {
        Some(Checkpoint {
            covered_from: Utc::now() - Duration::days(30),
            synced_until: Utc::now() - Duration::hours(hours_ago),
            counter_at_sync: counter,
            verified_at: Some(Utc::now() - Duration::hours(hours_ago)),
        })
    }

    #[test]
    fn skips_only_unchanged_recently_read_campaigns() {
        let c = config();
        assert!(unchanged_since_verified(
            &c,
            &campaign(Some(7)),
            checkpoint(Some(7), 1)
        ));
        assert!(!unchanged_since_verified(
            &c,
            &campaign(Some(8)),
            checkpoint(Some(7), 1)
        ));
        assert!(!unchanged_since_verified(
            &c,
            &campaign(Some(7)),
            checkpoint(Some(7), 7)
        ));
        assert!(!unchanged_since_verified(
            &c,
            &campaign(None),
            checkpoint(None, 1)
        ));
        assert!(!unchanged_since_verified(&c, &campaign(Some(7)), None));
        let backfill = SyncConfig {
            since: Some(Utc::now() - Duration::days(9)),
            ..config()
        };
        assert!(!unchanged_since_verified(
            &backfill,
            &campaign(Some(7)),
            checkpoint(Some(7), 1)
        ));
        let rescan = SyncConfig {
            rescan: true,
            ..config()
        };
        assert!(!unchanged_since_verified(
            &rescan,
            &campaign(Some(7)),
            checkpoint(Some(7), 1)
        ));
    }
}
