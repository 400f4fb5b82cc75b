//! Reading one campaign's users over a range of windows, and committing what was read.
//!
//! A range is first asked for as a whole; when it holds more pages than one transaction should
//! carry, it is halved along window boundaries. Every page of a range is read before anything is
//! written, so the rows of a range and the checkpoint that says they are stored commit together.

use std::collections::{HashMap, HashSet, VecDeque};

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{ApiClient, ApiError, Page};
use crate::db::rows::{Rejected, UserRow};
use crate::db::{self, state, writer};
use crate::sync::windows::Window;

/// Full re-reads of a range whose total moved while it was paged through.
const MAX_ATTEMPTS: u32 = 4;

/// What one campaign's sync did.
#[derive(Clone, Debug, Default)]
pub struct CampaignReport {
    pub scans: u64,
    pub requests: u64,
    pub rows_received: u64,
    pub inserted: u64,
    pub updated: u64,
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stopped before finishing")]
    Stopped,
    #[error(
        "range {start}..{end} kept changing while it was read ({seen} rows seen, {total} listed)"
    )]
    Unstable {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        seen: u64,
        total: u64,
    },
}

pub struct Scanner<'a> {
    pub api: &'a ApiClient,
    pub pool: &'a sqlx::PgPool,
    pub run_id: Uuid,
    pub campaign: &'a str,
    /// Where this run's gap-free reading of the campaign began.
    pub run_from: DateTime<Utc>,
    pub page_size: u32,
    /// Cancelled when the run must stop at its next safe point.
    pub halt: &'a CancellationToken,
    /// Most pages one transaction carries; a crash costs at most this many requests again.
    pub pages_per_scan: u64,
}

/// The rows of one range, deduplicated on the natural key.
#[derive(Default)]
struct Batch {
    rows: HashMap<(DateTime<Utc>, String), UserRow>,
    rejected: HashMap<String, Rejected>,
    requests: u64,
    received: u64,
}

impl Batch {
    fn add(&mut self, campaign: &str, page: Page) {
        self.received += page.items.len() as u64;
        for item in page.items {
            match UserRow::from_wire(campaign, item) {
                Ok(row) => {
                    self.rows
                        .insert((row.attributed_at, row.row_key.clone()), row);
                }
                Err(rejected) => {
                    self.rejected.insert(rejected.raw.to_string(), rejected);
                }
            }
        }
    }

    fn distinct(&self) -> u64 {
        (self.rows.len() + self.rejected.len()) as u64
    }
}

impl Scanner<'_> {
    /// Reads and commits consecutive windows, in order.
    pub async fn run(
        &self,
        windows: &[Window],
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let mut queue = VecDeque::from([windows]);
        while let Some(ws) = queue.pop_front() {
            if self.halt.is_cancelled() {
                return Err(ScanError::Stopped);
            }
            let range = Window {
                start: ws[0].start,
                end: ws[ws.len() - 1].end,
            };
            let first = self.page(range, 1, report).await?;
            if first.pages > self.pages_per_scan && ws.len() > 1 {
                let (a, b) = ws.split_at(ws.len() / 2);
                queue.push_front(b);
                queue.push_front(a);
                continue;
            }
            match self.read_range(range, first, report).await {
                // Fewer pages give concurrent writes less chance to move rows under us.
                Err(ScanError::Unstable { .. }) if ws.len() > 1 => {
                    let (a, b) = ws.split_at(ws.len() / 2);
                    queue.push_front(b);
                    queue.push_front(a);
                }
                Err(e) => return Err(e),
                Ok(batch) => self.commit(range, batch, report).await?,
            }
        }
        Ok(())
    }

    async fn page(
        &self,
        range: Window,
        page: u64,
        report: &mut CampaignReport,
    ) -> Result<Page, ApiError> {
        report.requests += 1;
        self.api
            .attributed_users(self.campaign, range.start, range.end, page, self.page_size)
            .await
    }

    /// Pages through a range until one full pass saw a steady total and at least that many rows.
    async fn read_range(
        &self,
        range: Window,
        mut first: Page,
        report: &mut CampaignReport,
    ) -> Result<Batch, ScanError> {
        let mut batch = Batch::default();
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                first = self.page(range, 1, report).await?;
            }
            let expected = first.total;
            let pages = first.pages;
            let mut last_total = first.total;
            let mut short = first.items.len() < self.page_size as usize;
            batch.requests += 1;
            batch.add(self.campaign, first.clone());
            let mut page_no = 2;
            // Stop at the last page, at a short page, or one past the count as a guard.
            while page_no <= pages && !short {
                let page = self.page(range, page_no, report).await?;
                batch.requests += 1;
                last_total = page.total;
                short = page.items.len() < self.page_size as usize;
                batch.add(self.campaign, page);
                page_no += 1;
            }
            if last_total == expected && batch.distinct() >= expected {
                return Ok(batch);
            }
            tracing::warn!(
                campaign = self.campaign,
                start = %range.start,
                end = %range.end,
                attempt,
                expected,
                last_total,
                seen = batch.distinct(),
                "rows moved while paging; reading the range again"
            );
            if attempt == MAX_ATTEMPTS && batch.distinct() >= last_total {
                return Ok(batch);
            }
            if attempt == MAX_ATTEMPTS {
                return Err(ScanError::Unstable {
                    start: range.start,
                    end: range.end,
                    seen: batch.distinct(),
                    total: last_total,
                });
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Writes a range's rows, its ledger entry and the checkpoint in one transaction.
    async fn commit(
        &self,
        range: Window,
        batch: Batch,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let rows: Vec<UserRow> = batch.rows.into_values().collect();
        let rejected: Vec<Rejected> = batch.rejected.into_values().collect();
        // Upserts are idempotent, so a transaction cut off by a dropped connection or a
        // restarting server is safe to run again whole.
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(6);
        let counts = (|| self.write(range, &rows, &rejected, batch.requests, batch.received))
            .retry(backoff)
            .when(db::is_transient)
            .notify(|e, wait| {
                tracing::warn!(campaign = self.campaign, error = %e, wait_ms = wait.as_millis() as u64, "database write failed; retrying");
            })
            .await?;
        report.scans += 1;
        report.rows_received += batch.received;
        report.inserted += counts.inserted;
        report.updated += counts.updated;
        report.rejected += rejected.len() as u64;
        if !rejected.is_empty() {
            tracing::warn!(
                campaign = self.campaign,
                count = rejected.len(),
                "rows rejected"
            );
        }
        Ok(())
    }

    async fn write(
        &self,
        range: Window,
        rows: &[UserRow],
        rejected: &[Rejected],
        requests: u64,
        received: u64,
    ) -> Result<writer::WriteCounts, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let counts = writer::upsert_users(&mut tx, rows).await?;
        writer::insert_rejected(&mut tx, self.run_id, self.campaign, rejected).await?;
        state::record_scan(
            &mut tx,
            &state::ScanRecord {
                campaign: self.campaign,
                range,
                run_id: self.run_id,
                requests,
                rows_received: received,
                inserted: counts.inserted,
                updated: counts.updated,
            },
        )
        .await?;
        state::advance_checkpoint(
            &mut tx,
            self.campaign,
            self.run_from,
            range.end,
            self.run_id,
        )
        .await?;
        tx.commit().await?;
        Ok(counts)
    }
}

/// Windows not inside any settled range, grouped into runs of consecutive windows.
pub fn unsettled_runs(windows: &[Window], settled: &[Window]) -> Vec<Vec<Window>> {
    let covered: HashSet<usize> = windows
        .iter()
        .enumerate()
        .filter(|(_, w)| settled.iter().any(|s| s.start <= w.start && w.end <= s.end))
        .map(|(i, _)| i)
        .collect();
    let mut runs: Vec<Vec<Window>> = Vec::new();
    let mut previous_kept = false;
    for (i, w) in windows.iter().enumerate() {
        let keep = !covered.contains(&i);
        if keep {
            match runs.last_mut() {
                Some(run) if previous_kept => run.push(*w),
                _ => runs.push(vec![*w]),
            }
        }
        previous_kept = keep;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn day(n: i64) -> Window {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(n);
        Window {
            start,
            end: start + Duration::days(1),
        }
    }

    #[test]
    fn settled_windows_split_the_plan() {
        let windows: Vec<Window> = (0..6).map(day).collect();
        let settled = [Window {
            start: day(1).start,
            end: day(2).end,
        }];
        let runs = unsettled_runs(&windows, &settled);
        assert_eq!(runs, vec![vec![day(0)], vec![day(3), day(4), day(5)]]);
        // A settled range only partly over a window does not cover it.
        let partial = [Window {
            start: day(0).start,
            end: day(0).start + Duration::hours(5),
        }];
        assert_eq!(unsettled_runs(&windows, &partial).len(), 1);
    }
}
