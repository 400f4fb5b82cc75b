//! What reading one campaign's ranges shares: the scanner, what it reports, and its errors.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{ApiClient, ApiError, Page};
use crate::db::Schema;
use crate::db::{state, writer};
use crate::model::personal::{Protection, Suppression};
use crate::model::user::Rejected;
use crate::model::window::Window;
use crate::sync::batch::BatchWriter;

/// Full re-reads of a range whose total moved while it was paged through.
pub(super) const MAX_PASSES: u32 = 4;

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
    /// Rows of people `forget` erased, dropped.
    pub forgotten: u64,
}

/// The items of a range kept out of `attributed_users`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAside {
    /// Unreadable or refused: kept in `rejected_rows`.
    pub rejected: u64,
    /// A forgotten person's.
    pub forgotten: u64,
}

impl SetAside {
    /// Counts the items set aside by their keys ([`Rejected::key`]).
    pub fn count<'k>(keys: impl Iterator<Item = &'k String>) -> SetAside {
        let mut counts = SetAside::default();
        for key in keys {
            if Rejected::is_forgotten_key(key) {
                counts.forgotten += 1;
            } else {
                counts.rejected += 1;
            }
        }
        counts
    }
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
    pub schema: &'a Schema,
    /// What `--personal-data` does to each item before it is read.
    pub personal: &'a Protection,
    /// Whether `forget` erased anyone: the list itself is asked about each page.
    pub suppression: Suppression,
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

/// What reading a range's pages took.
#[derive(Default)]
pub(super) struct Reading {
    pub(super) requests: u64,
    pub(super) received: u64,
}

impl Scanner<'_> {
    pub(super) async fn page(
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

    pub(super) fn page_size(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed)
    }

    pub(super) fn stored_until(&self) -> Option<DateTime<Utc>> {
        *self.stored_until.lock().expect("never poisoned")
    }

    /// Accounts for a committed range.
    pub(super) fn finish(
        &self,
        report: &mut CampaignReport,
        reading: &Reading,
        counts: writer::WriteCounts,
        set_aside: SetAside,
        range: Window,
    ) {
        let rejected = set_aside.rejected;
        report.forgotten += set_aside.forgotten;
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
}
