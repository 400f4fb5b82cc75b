//! Reading one campaign's users over a range of windows, and committing what was read.
//!
//! A range is first asked for as a whole; when it holds more pages than one transaction should
//! carry, it is halved along window boundaries. Each page is written as it arrives, inside one
//! transaction per range, so memory holds one page while the rows of a range and the checkpoint
//! that says they are stored still commit together.

use std::collections::{HashMap, HashSet, VecDeque};

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{ApiClient, ApiError, Page};
use crate::db::{self, state, writer};
use crate::memory::Hold;
use crate::model::user::{Rejected, UserRow};
use crate::model::window::Window;
use crate::sync::batch::{BatchWriter, RangeRows};

/// Full re-reads of a range whose total moved while it was paged through.
const MAX_PASSES: u32 = 4;

/// Reads of a range when the database drops out under its transaction.
const DB_ATTEMPTS: u32 = 6;

/// Most pages one range may claim: ten million rows in full pages, more than any window of an
/// honest project holds, so a `pagination` that claims pages without end is refused up front.
pub const MAX_PAGES_PER_RANGE: u64 = 10_000;

/// What one campaign's sync did.
#[derive(Clone, Debug, Default)]
pub struct CampaignReport {
    /// Not read: its counter had not moved since it was last read.
    pub skipped: bool,
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
    Api(ApiError),
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

impl From<ApiError> for ScanError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Stopped => ScanError::Stopped,
            other => ScanError::Api(other),
        }
    }
}

pub struct Scanner<'a> {
    pub api: &'a ApiClient,
    pub pool: &'a sqlx::PgPool,
    /// Commits ranges that fit in one page together with other campaigns' ranges.
    pub writer: &'a BatchWriter,
    pub run_id: Uuid,
    pub campaign: &'a str,
    /// Where this run's gap-free reading of the campaign began.
    pub run_from: DateTime<Utc>,
    /// Rows asked for per page; halved for the campaign when a page is too large to read.
    pub page_size: AtomicU32,
    /// Set once Postgres refused a value of the campaign's rows: from then on each page's rows
    /// are tried one by one before they are written, and those refused are set aside.
    pub screen: AtomicBool,
    /// Cancelled when the run must stop at its next safe point.
    pub halt: &'a CancellationToken,
    pub progress: Option<&'a indicatif::ProgressBar>,
    /// Most pages one transaction carries; a crash costs at most this many requests again.
    pub pages_per_scan: u64,
    /// The end of what is stored for the campaign (its checkpoint, then each range this run
    /// commits); None when nothing is. Ranges starting there or later are taken to be fresh.
    pub stored_until: Mutex<Option<DateTime<Utc>>>,
    /// Slots for ranges read in a transaction of their own, which bound their connections.
    pub transactions: &'a tokio::sync::Semaphore,
    /// When set, the commit of the campaign's last range also records that it was read to the
    /// run's end, and judges its counter.
    pub verify: Option<state::Verify>,
}

/// Where the pages of a range go while it is read: the range's own transaction, or memory.
trait PageSink {
    async fn take(&mut self, scanner: &Scanner<'_>, page: Page) -> Result<(), sqlx::Error>;
    /// Distinct rows taken so far, rejected ones included.
    fn distinct(&self) -> u64;
    /// Gives back what the rows held draw on the memory budget, before a pass that reads
    /// the range again: a task that waits on the budget must hold none of it.
    fn release(&mut self) {}
}

/// A range's own transaction, written page by page: memory holds one page, and a fingerprint
/// of each key the range has.
struct TxSink<'t> {
    tx: &'t mut sqlx::PgConnection,
    /// Fingerprints of the rows written, to count distinct rows against the server's total.
    seen: HashSet<u64>,
    /// Fingerprints of the keys stored before this transaction began; rows with others are
    /// loaded by COPY. Two keys sharing one (about one chance in 10^11 for a range of 20,000
    /// rows) only send a new row through the upsert, or count one row short, which reads the
    /// range again: never a wrong write.
    existing: HashSet<u64>,
    rejected: HashSet<String>,
    counts: writer::WriteCounts,
    /// When the campaign list was read, if the range's rows are to be counted: those attributed
    /// by then are in `counted`.
    listed_at: Option<DateTime<Utc>>,
    counted: u64,
}

impl PageSink for TxSink<'_> {
    async fn take(&mut self, scanner: &Scanner<'_>, mut page: Page) -> Result<(), sqlx::Error> {
        // Held until the page's rows are written.
        let _hold = std::mem::take(&mut page.hold);
        let (rows, rejected) = scanner.convert(page, Some(&mut *self.tx)).await?;
        // The map's keys serve the lookups, the writes' counts and the seen set: no copies.
        let (new, known): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(key, _)| {
            let key = fingerprint(key);
            !self.existing.contains(&key) && !self.seen.contains(&key)
        });
        let (new_keys, new): (Vec<_>, Vec<UserRow>) = new.into_iter().unzip();
        let (known_keys, known): (Vec<_>, Vec<UserRow>) = known.into_iter().unzip();
        let (rejected_keys, rejected): (Vec<String>, Vec<Rejected>) = rejected.into_iter().unzip();
        let upserted = writer::upsert_users(self.tx, &known.iter().collect::<Vec<_>>()).await?;
        let copied = writer::copy_new_users(self.tx, &new.iter().collect::<Vec<_>>()).await?;
        writer::insert_rejected(self.tx, scanner.run_id, scanner.campaign, &rejected).await?;
        for c in upserted.values() {
            self.counts.inserted += c.inserted;
            self.counts.updated += c.updated;
        }
        self.counts.inserted += copied;
        for key in new_keys.iter().chain(&known_keys) {
            let first_sight = self.seen.insert(fingerprint(key));
            self.counted += u64::from(first_sight && self.listed_at.is_some_and(|t| key.0 <= t));
        }
        self.rejected.extend(rejected_keys);
        Ok(())
    }

    fn distinct(&self) -> u64 {
        (self.seen.len() + self.rejected.len()) as u64
    }
}

/// A key's fingerprint; 16 bytes in a set where the key takes about a hundred.
fn fingerprint(key: &writer::Key) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A small range held in memory until the batch writer commits it; a later pass's copy of a
/// row replaces an earlier one.
#[derive(Default)]
struct MemorySink {
    rows: HashMap<writer::Key, UserRow>,
    rejected: HashMap<String, Rejected>,
    /// What the rows draw on the memory budget, until their commit.
    hold: Hold,
}

impl PageSink for MemorySink {
    async fn take(&mut self, scanner: &Scanner<'_>, mut page: Page) -> Result<(), sqlx::Error> {
        self.hold.merge(std::mem::take(&mut page.hold));
        let (rows, rejected) = scanner.convert(page, None).await?;
        self.rows.extend(rows);
        self.rejected.extend(rejected);
        Ok(())
    }

    fn distinct(&self) -> u64 {
        (self.rows.len() + self.rejected.len()) as u64
    }

    fn release(&mut self) {
        self.hold = Hold::default();
    }
}

/// A page's rows by natural key, and the rows that could not be read, by content.
type Converted = (HashMap<writer::Key, UserRow>, HashMap<String, Rejected>);

fn convert(campaign: &str, page: Page) -> Converted {
    let mut rows = HashMap::with_capacity(page.items.len());
    let mut rejected = HashMap::new();
    for item in page.items {
        match UserRow::from_item(campaign, &item, page.recoded) {
            Ok(row) => {
                rows.insert((row.attributed_at, row.row_key.clone()), row);
            }
            Err(r) => {
                rejected.insert(r.raw.clone(), r);
            }
        }
    }
    (rows, rejected)
}

/// As [`convert`], with each row Postgres refuses (see [`writer::refused`]) set aside with its
/// reason and its text as received.
async fn convert_screened(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    page: Page,
) -> Result<Converted, sqlx::Error> {
    let mut read = Vec::with_capacity(page.items.len());
    let mut rejected = HashMap::new();
    for item in page.items {
        match UserRow::from_item(campaign, &item, page.recoded) {
            Ok(row) => read.push((row, item)),
            Err(r) => {
                rejected.insert(r.raw.clone(), r);
            }
        }
    }
    let refused: HashMap<usize, String> =
        writer::refused(conn, &read.iter().map(|(row, _)| row).collect::<Vec<_>>())
            .await?
            .into_iter()
            .collect();
    let mut rows = HashMap::with_capacity(read.len());
    for (i, (row, item)) in read.into_iter().enumerate() {
        match refused.get(&i) {
            Some(message) => {
                let raw = item.get().to_owned();
                let reason = format!("Postgres refused to store it: {message}");
                rejected.insert(raw.clone(), Rejected { reason, raw });
            }
            None => {
                rows.insert((row.attributed_at, row.row_key.clone()), row);
            }
        }
    }
    Ok((rows, rejected))
}

/// What reading a range's pages took.
#[derive(Default)]
struct Reading {
    requests: u64,
    received: u64,
}

impl Scanner<'_> {
    /// Reads and commits consecutive windows, in order; `last` when they end the campaign's plan.
    pub async fn run(
        &self,
        windows: &[Window],
        last: bool,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let mut queue = VecDeque::from([windows]);
        while let Some(ws) = queue.pop_front() {
            let verify = if last && queue.is_empty() {
                self.verify
            } else {
                None
            };
            if self.halt.is_cancelled() {
                return Err(ScanError::Stopped);
            }
            let range = Window {
                start: ws[0].start,
                end: ws[ws.len() - 1].end,
            };
            // Too many pages for one transaction, or rows that kept moving: halve the range,
            // as fewer pages give concurrent writes less chance to move rows under us.
            let splittable = ws.len() > 1;
            let read = match self.page(range, 1, report).await {
                Ok(first) if splittable && first.pages > self.pages_per_scan => Ok(true),
                Ok(first) => match self.read_range(range, first, verify, report).await {
                    Err(ScanError::Unstable { .. }) if splittable => Ok(true),
                    other => other.map(|()| false),
                },
                Err(e) => Err(e.into()),
            };
            let split = match read {
                // Rows too rich for a page of this size: the same range in smaller pages.
                Err(ScanError::Api(ApiError::TooLarge { .. })) if self.page_size() > 1 => {
                    let smaller = self.page_size() / 2;
                    self.page_size.store(smaller, Ordering::Relaxed);
                    tracing::warn!(
                        campaign = self.campaign,
                        page_size = smaller,
                        "a page was too large; reading in smaller pages"
                    );
                    queue.push_front(ws);
                    continue;
                }
                // A value Postgres refuses: the same range, each row tried before it is written.
                Err(ScanError::Db(e))
                    if db::is_data_error(&e) && !self.screen.swap(true, Ordering::Relaxed) =>
                {
                    tracing::warn!(
                        campaign = self.campaign,
                        error = %e,
                        "Postgres refused a row; reading the range again, trying each row first"
                    );
                    queue.push_front(ws);
                    continue;
                }
                other => other?,
            };
            if split {
                let (a, b) = ws.split_at(ws.len() / 2);
                queue.push_front(b);
                queue.push_front(a);
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
            .attributed_users(
                self.campaign,
                range.start,
                range.end,
                page,
                self.page_size(),
            )
            .await
    }

    /// A page's rows, each tried on `conn` (or a connection of the pool) first once Postgres
    /// refused one of the campaign's.
    async fn convert(
        &self,
        page: Page,
        conn: Option<&mut sqlx::PgConnection>,
    ) -> Result<Converted, sqlx::Error> {
        if !self.screen.load(Ordering::Relaxed) {
            return Ok(convert(self.campaign, page));
        }
        match conn {
            Some(conn) => convert_screened(conn, self.campaign, page).await,
            None => convert_screened(&mut *self.pool.acquire().await?, self.campaign, page).await,
        }
    }

    fn page_size(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed)
    }

    /// Reads a range and commits it: through the batch writer when it fits in one page, else
    /// in a transaction of its own. When the database drops out mid-way the transaction is gone
    /// with everything in it, so the range is read again from the start.
    async fn read_range(
        &self,
        range: Window,
        first: Page,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let mut first = Some(first);
        let mut delay = Duration::from_millis(200);
        for attempt in 1.. {
            let page = match first.take() {
                Some(page) => page,
                None => self.page(range, 1, report).await?,
            };
            let result = if page.pages <= 1 {
                self.batched(range, page, verify, report).await
            } else {
                self.range_transaction(range, page, verify, report).await
            };
            match result {
                Err(ScanError::Db(e)) if db::is_transient(&e) && attempt < DB_ATTEMPTS => {
                    tracing::warn!(campaign = self.campaign, error = %e, attempt, "database trouble; reading the range again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    /// Reads a small range into memory and has the batch writer commit it.
    async fn batched(
        &self,
        range: Window,
        first: Page,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let mut sink = MemorySink::default();
        let reading = self.read_passes(range, first, report, &mut sink).await?;
        let rejected = sink.rejected.len() as u64;
        let verify = verify.map(|v| {
            v.with_range(range.start, || {
                let attributed = sink.rows.keys().filter(|k| k.0 <= v.listed_at).count();
                (attributed + sink.rejected.len()) as u64
            })
        });
        let counts = self
            .writer
            .write(RangeRows {
                campaign: self.campaign.to_owned(),
                range,
                run_from: self.run_from,
                rows: sink.rows.into_values().collect(),
                rejected: sink.rejected.into_values().collect(),
                requests: reading.requests,
                received: reading.received,
                fresh: self.stored_until().is_none_or(|until| range.start >= until),
                verified: verify,
                hold: sink.hold,
            })
            .await?;
        self.finish(report, &reading, counts, rejected, range);
        Ok(())
    }

    /// Pages through a range in one transaction, writing each page as it comes, then records
    /// the range and the checkpoint and commits.
    async fn range_transaction(
        &self,
        range: Window,
        first: Page,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        // Waiting for a slot or a connection while holding the page's share of the memory
        // budget could starve the ranges that hold them and wait on the budget for their next
        // page: the page is let go, and read again once both are had.
        let (_slot, mut conn, first) =
            match (self.transactions.try_acquire(), self.pool.try_acquire()) {
                (Ok(slot), Some(conn)) => (slot, conn, first),
                (slot, conn) => {
                    drop(first);
                    let slot = match slot {
                        Ok(slot) => slot,
                        Err(_) => self.transactions.acquire().await.expect("never closed"),
                    };
                    let conn = match conn {
                        Some(conn) => conn,
                        None => self.pool.acquire().await?,
                    };
                    (slot, conn, self.page(range, 1, report).await?)
                }
            };
        let mut tx = conn.begin().await?;
        let bounds = [(self.campaign, range.start, range.end)];
        let existing = writer::existing_keys(&mut tx, &bounds)
            .await?
            .remove(self.campaign)
            .unwrap_or_default()
            .iter()
            .map(fingerprint)
            .collect();
        let mut sink = TxSink {
            tx: &mut tx,
            seen: HashSet::new(),
            existing,
            rejected: HashSet::new(),
            counts: writer::WriteCounts::default(),
            listed_at: verify.map(|v| v.listed_at),
            counted: 0,
        };
        let reading = self.read_passes(range, first, report, &mut sink).await?;
        let (counts, rejected) = (sink.counts, sink.rejected.len() as u64);
        let counted = sink.counted + rejected;
        let verify = verify.map(|v| v.with_range(range.start, || counted));
        let scan = state::ScanRecord {
            campaign: self.campaign,
            range,
            run_from: self.run_from,
            requests: reading.requests,
            rows_received: reading.received,
            inserted: counts.inserted,
            updated: counts.updated,
        };
        let verified: Vec<_> = verify.map(|v| (self.campaign, v)).into_iter().collect();
        state::record_scans(&mut tx, self.run_id, &[scan], &verified).await?;
        tx.commit().await?;
        self.finish(report, &reading, counts, rejected, range);
        Ok(())
    }

    fn stored_until(&self) -> Option<DateTime<Utc>> {
        *self.stored_until.lock().expect("never poisoned")
    }

    /// Accounts for a committed range.
    fn finish(
        &self,
        report: &mut CampaignReport,
        reading: &Reading,
        counts: writer::WriteCounts,
        rejected: u64,
        range: Window,
    ) {
        let mut stored = self.stored_until.lock().expect("never poisoned");
        *stored = Some(stored.map_or(range.end, |u| u.max(range.end)));
        drop(stored);
        report.scans += 1;
        report.rows_received += reading.received;
        report.inserted += counts.inserted;
        report.updated += counts.updated;
        report.rejected += rejected;
        if rejected > 0 {
            tracing::warn!(campaign = self.campaign, count = rejected, "rows rejected");
        }
    }

    /// Pages through a range into `sink` until one full pass saw a steady total and at least
    /// that many distinct rows.
    #[tracing::instrument(name = "range", skip_all, fields(start = %range.start, end = %range.end))]
    async fn read_passes(
        &self,
        range: Window,
        first: Page,
        report: &mut CampaignReport,
        sink: &mut impl PageSink,
    ) -> Result<Reading, ScanError> {
        let mut reading = Reading::default();
        let mut next_first = Some(first);
        for pass in 1..=MAX_PASSES {
            let first = match next_first.take() {
                Some(page) => page,
                None => self.page(range, 1, report).await?,
            };
            let (expected, pages) = (first.total, first.pages);
            if pages > MAX_PAGES_PER_RANGE {
                return Err(ScanError::Api(ApiError::Protocol(format!(
                    "{pages} pages claimed for one window, more than the {MAX_PAGES_PER_RANGE} \
                     a range may have"
                ))));
            }
            let page_size = self.page_size() as usize;
            let mut last_total = expected;
            let mut short = first.items.len() < page_size;
            self.take(sink, first, &mut reading).await?;
            let mut page_no = 2;
            // Stop at the last page, or at a short one.
            while page_no <= pages && !short {
                let page = self.page(range, page_no, report).await?;
                last_total = page.total;
                short = page.items.len() < page_size;
                self.take(sink, page, &mut reading).await?;
                page_no += 1;
            }
            let steady = last_total == expected && sink.distinct() >= expected;
            if steady || (pass == MAX_PASSES && sink.distinct() >= last_total) {
                return Ok(reading);
            }
            if pass == MAX_PASSES {
                return Err(ScanError::Unstable {
                    start: range.start,
                    end: range.end,
                    seen: sink.distinct(),
                    total: last_total,
                });
            }
            sink.release();
            tracing::warn!(
                campaign = self.campaign,
                start = %range.start,
                end = %range.end,
                pass,
                expected,
                last_total,
                seen = sink.distinct(),
                "rows moved while paging; reading the range again"
            );
        }
        unreachable!("the last pass returns")
    }

    async fn take(
        &self,
        sink: &mut impl PageSink,
        page: Page,
        reading: &mut Reading,
    ) -> Result<(), sqlx::Error> {
        reading.requests += 1;
        reading.received += page.items.len() as u64;
        if let Some(bar) = self.progress {
            bar.inc(page.items.len() as u64);
        }
        sink.take(self, page).await
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
