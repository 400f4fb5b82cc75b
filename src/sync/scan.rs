//! Reading one campaign's users over a range of windows, and committing what was read.
//!
//! A range is first asked for as a whole; when it holds more pages than one transaction should
//! carry, it is halved along window boundaries. Each page is written as it arrives, inside one
//! transaction per range, so memory holds one page while the rows of a range and the checkpoint
//! that says they are stored still commit together.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;

use crate::api::{ApiError, Page};
use crate::db::{self, state};
use crate::model::window::Window;
use crate::sync::retry;
pub use crate::sync::scanner::{CampaignReport, ScanError, Scanner, MAX_PAGES_PER_RANGE};

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
            if self.halt.is_cancelled() {
                return Err(ScanError::Stopped);
            }
            let verify = self.verify.filter(|_| last && queue.is_empty());
            match self.read_or_split(ws, verify, report).await {
                Ok(false) => {}
                Ok(true) => {
                    let (a, b) = ws.split_at(ws.len() / 2);
                    queue.push_front(b);
                    queue.push_front(a);
                }
                Err(e) if self.read_again(&e) => queue.push_front(ws),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads and commits consecutive windows as one range; `true` when, instead, they are to be
    /// halved: too many pages for one transaction, or rows that kept moving, as fewer pages
    /// give concurrent writes less chance to move rows under us.
    async fn read_or_split(
        &self,
        ws: &[Window],
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<bool, ScanError> {
        let range = Window {
            start: ws[0].start,
            end: ws[ws.len() - 1].end,
        };
        let splittable = ws.len() > 1;
        let first = self.page(range, 1, report).await?;
        if splittable && first.pages > self.pages_per_scan {
            return Ok(true);
        }
        match self.read_range(range, first, verify, report).await {
            Err(ScanError::Unstable { .. }) if splittable => Ok(true),
            other => other.map(|()| false),
        }
    }

    /// Whether a range that failed with `e` is read again as it is, after adapting the reading:
    /// rows too rich for a page of this size are asked for in smaller pages; a value Postgres
    /// refuses has each row tried before it is written.
    fn read_again(&self, e: &ScanError) -> bool {
        match e {
            ScanError::Api(ApiError::TooLarge { .. }) if self.page_size() > 1 => {
                let smaller = self.page_size() / 2;
                self.page_size.store(smaller, Ordering::Relaxed);
                tracing::warn!(
                    campaign = self.campaign,
                    page_size = smaller,
                    "a page was too large; reading in smaller pages"
                );
                true
            }
            ScanError::Db(e)
                if db::is_data_error(e) && !self.screen.swap(true, Ordering::Relaxed) =>
            {
                tracing::warn!(
                    campaign = self.campaign,
                    error = %e,
                    "Postgres refused a row; reading the range again, trying each row first"
                );
                true
            }
            _ => false,
        }
    }

    /// Reads a range and commits it. When the database drops out mid-way the transaction is
    /// gone with everything in it, so the range is read again from the start.
    async fn read_range(
        &self,
        range: Window,
        first: Page,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let ctx = (Some(first), report);
        let (_, result) = retry::on_db_trouble(
            self.campaign,
            self.halt,
            ctx,
            |(first, report)| async move {
                let result = self.read_range_once(range, first, verify, report).await;
                ((None, report), result)
            },
        )
        .await;
        result
    }

    /// Reads a range from its `first` page (asked for again when none is given) and commits
    /// it: through the batch writer when it fits in one page, else in a transaction of its own.
    async fn read_range_once(
        &self,
        range: Window,
        first: Option<Page>,
        verify: Option<state::Verify>,
        report: &mut CampaignReport,
    ) -> Result<(), ScanError> {
        let page = match first {
            Some(page) => page,
            None => self.page(range, 1, report).await?,
        };
        if page.pages <= 1 {
            self.batched(range, page, verify, report).await
        } else {
            self.range_transaction(range, page, verify, report).await
        }
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
    use chrono::{Duration, TimeZone, Utc};

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
