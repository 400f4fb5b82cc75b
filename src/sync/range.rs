//! Reading one range of windows to the end: page by page, pass after pass until its total
//! holds still, then committed with its checkpoint, through the batch writer or in a
//! transaction of its own.

use std::collections::HashSet;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Postgres};
use tokio::sync::SemaphorePermit;

use crate::api::{ApiError, Page};
use crate::db::{state, writer};
use crate::model::window::Window;
use crate::sync::batch::RangeRows;
use crate::sync::scanner::{
    CampaignReport, Reading, ScanError, Scanner, SetAside, MAX_PAGES_PER_RANGE, MAX_PASSES,
};
use crate::sync::sink::{fingerprint, MemorySink, PageSink, TxSink};

impl Scanner<'_> {
    /// Reads a small range into memory and has the batch writer commit it.
    pub(super) async fn batched(
        &self,
        range: Window,
        first: Page,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let mut sink = MemorySink::default();
        let reading = self.read_passes(range, first, report, &mut sink).await?;
        let set_aside = SetAside::count(sink.rejected.keys());
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
        self.finish(report, &reading, counts, set_aside, range);
        Ok(())
    }

    /// Pages through a range in one transaction, writing each page as it comes, then records
    /// the range and the checkpoint and commits.
    pub(super) async fn range_transaction(
        &self,
        range: Window,
        first: Page,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let (_slot, mut conn, first) = self.transaction_slot(range, first, report).await?;
        let mut tx = conn.begin().await?;
        let existing = self.existing_fingerprints(&mut tx, range).await?;
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
        let (counts, set_aside) = (sink.counts, SetAside::count(sink.rejected.iter()));
        let counted = sink.counted + set_aside.rejected + set_aside.forgotten;
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
        state::record_scans(self.schema, &mut tx, self.run_id, &[scan], &verified).await?;
        tx.commit().await?;
        self.finish(report, &reading, counts, set_aside, range);
        Ok(())
    }

    /// A slot and a connection for a range's own transaction, and its first page. Waiting for
    /// either while holding the page's share of the memory budget could starve the ranges that
    /// hold them and wait on the budget for their next page: the page is let go, and read
    /// again once both are had.
    async fn transaction_slot(
        &self,
        range: Window,
        first: Page,
        report: &mut CampaignReport,
    ) -> Result<(SemaphorePermit<'_>, PoolConnection<Postgres>, Page), ScanError> {
        let (slot, conn) = match (self.transactions.try_acquire(), self.pool.try_acquire()) {
            (Ok(slot), Some(conn)) => return Ok((slot, conn, first)),
            other => other,
        };
        drop(first);
        let slot = match slot {
            Ok(slot) => slot,
            Err(_) => self.transactions.acquire().await.expect("never closed"),
        };
        let conn = match conn {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok((slot, conn, self.page(range, 1, report).await?))
    }

    /// Fingerprints of the campaign's keys already stored in `range`.
    async fn existing_fingerprints(
        &self,
        tx: &mut sqlx::PgConnection,
        range: Window,
    ) -> Result<HashSet<u64>, sqlx::Error> {
        let bounds = [(self.campaign, range.start, range.end)];
        let mut existing = writer::existing_keys(self.schema, tx, &bounds).await?;
        let keys = existing.remove(self.campaign).unwrap_or_default();
        Ok(keys.iter().map(fingerprint).collect())
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
            let expected = first.total;
            let last_total = self
                .one_pass(range, first, report, sink, &mut reading)
                .await?;
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

    /// Pages through the range once from its `first` page, stopping at the last page or at a
    /// short one; returns the total the last page claimed.
    async fn one_pass(
        &self,
        range: Window,
        first: Page,
        report: &mut CampaignReport,
        sink: &mut impl PageSink,
        reading: &mut Reading,
    ) -> Result<u64, ScanError> {
        let pages = first.pages;
        if pages > MAX_PAGES_PER_RANGE {
            return Err(ScanError::Api(ApiError::Protocol(format!(
                "{pages} pages claimed for one window, more than the {MAX_PAGES_PER_RANGE} \
                 a range may have"
            ))));
        }
        let page_size = self.page_size() as usize;
        let mut last_total = first.total;
        let mut short = first.items.len() < page_size;
        self.take(sink, first, reading).await?;
        let mut page_no = 2;
        while page_no <= pages && !short {
            let page = self.page(range, page_no, report).await?;
            last_total = page.total;
            short = page.items.len() < page_size;
            self.take(sink, page, reading).await?;
            page_no += 1;
        }
        Ok(last_total)
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
