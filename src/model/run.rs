//! What a run ends with: its outcome and its figures (declared in [`super::figures`], from which
//! the ledger, the metrics and `status` follow).

use uuid::Uuid;

/// How a run ended, as the ledger's `outcome` column spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Some rows or campaigns could not be read or stored; the rest is committed.
    Partial,
    Failed,
    /// Stopped by a signal; what finished is committed.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The figures a run ends with: its own, then each stream's.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunTotals {
    /// Data API requests, over every stream.
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    /// The attributed users: the campaign list and each campaign's rows.
    pub users: UserTotals,
    /// What `--attribution-details` looked up.
    pub lookups: LookupTotals,
    /// What `--reporting` did.
    pub reporting: ReportingTotals,
}

/// What a run's reading of the campaigns and their attributed users came to.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct UserTotals {
    pub campaigns_listed: u64,
    pub campaigns_synced: u64,
    /// Of the synced: skipped because their trusted counter had not moved.
    pub campaigns_skipped: u64,
    /// Read, and why: never read to a run's end before, counter moved, counter not trusted,
    /// `--full-scan-every` come round, `--since` or `--rescan`.
    pub campaigns_new: u64,
    pub campaigns_changed: u64,
    pub campaigns_untrusted: u64,
    pub campaigns_due: u64,
    pub campaigns_requested: u64,
    /// Read because a signup webhook marked it, its trusted counter unmoved.
    pub campaigns_pushed: u64,
    pub campaigns_failed: u64,
    pub rows_received: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_rejected: u64,
    /// Rows of people `forget` erased, dropped at the door.
    pub rows_forgotten: u64,
}

/// What a run's reading of the Reporting API came to.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReportingTotals {
    /// Requests sent, refusals and failures included.
    pub requests: u64,
    /// Of them, refused with 429.
    pub rate_limited: u64,
    /// Days (of a view) read to their last page.
    pub days: u64,
    pub pages: u64,
    pub rows_inserted: u64,
    /// Rows whose numbers changed since they were last read.
    pub rows_changed: u64,
    /// Values sent that are not numbers in the documented form, stored as NULL.
    pub unparsed: u64,
    /// Days (of a view) due that wait for the next run.
    pub days_left: u64,
    /// Why reporting stopped short, if it did.
    pub error: Option<String>,
}

/// What a run's attribution look-ups came to: an attribution, none (204), or an answer that
/// could not be had or used.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LookupTotals {
    pub made: u64,
    pub found: u64,
    pub not_found: u64,
    pub failed: u64,
    /// Why they stopped before the ids due were done (their deadline, a `Retry-After` longer
    /// than it, failures in a row), if they did.
    pub stopped: Option<String>,
}

/// What a finished run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    pub run_id: Uuid,
    pub outcome: Outcome,
    pub totals: RunTotals,
    pub seconds: f64,
}
