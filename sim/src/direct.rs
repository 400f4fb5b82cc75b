//! The simulator seen directly, without HTTP: what it serves, and steering it in ways tests need.

use crate::bucket::TokenBucket;
use crate::config::{Faults, ReportingLimit};
use crate::counter::Counter;
use crate::data::Campaign;
use crate::project::listing_indexes;
use crate::quota::Quota;
use crate::state::Simulator;
use crate::stats::SimStats;
use chrono::{DateTime, Utc};
use serde_json::Value;

impl Simulator {
    /// Every live campaign, in listing order, exactly as `GET /campaigns` renders it.
    pub fn campaigns(&self) -> Vec<Value> {
        let st = self.lock();
        st.ordered()
            .iter()
            .map(|c| st.config.render_campaign(c))
            .collect()
    }

    /// Every row of a campaign as `GET /attributed-users` renders it (drift and bad rows
    /// included); empty if unknown or deleted.
    pub fn attributed_users(&self, display_id: &str) -> Vec<Value> {
        let st = self.lock();
        st.campaigns
            .get(display_id)
            .map(|c| {
                c.rows()
                    .iter()
                    .map(|r| st.config.render_row(c, r))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every row of every live campaign, as served.
    pub fn all_attributed_users(&self) -> Vec<Value> {
        let st = self.lock();
        let ordered = st.ordered();
        let rows = ordered
            .iter()
            .flat_map(|c| c.rows().iter().map(|r| st.config.render_row(c, r)));
        rows.collect()
    }

    /// Rows churn removed from the data set, rendered as they were served before removal.
    pub fn removed_rows(&self) -> Vec<Value> {
        self.lock().removed.clone()
    }

    /// Sets the simulated clock; `None` goes back to real time.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        self.lock().clock = now;
    }

    /// Replaces the faults; the rate limiter starts again with a full bucket and no storm.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.lock();
        let old = &st.config.faults;
        if (old.drift_rate, old.bad_row_rate) != (faults.drift_rate, faults.bad_row_rate) {
            // Served row texts were rendered with the old drift and bad-row rates.
            st.campaigns.values_mut().for_each(Campaign::forget_served);
        }
        st.config.faults = faults;
        st.bucket = TokenBucket::default();
        st.storm_until = None;
    }

    /// Counters since start; drifted and bad rows are counted in the current data set.
    pub fn stats(&self) -> SimStats {
        let st = self.lock();
        let rows = || st.campaigns.values().flat_map(|c| c.rows().iter());
        SimStats {
            drifted_rows: rows().filter(|r| st.config.drifts(r)).count() as u64,
            bad_rows: rows().filter(|r| st.config.is_bad(r)).count() as u64,
            webhooks: st.webhooks.stats(),
            ..st.stats.clone()
        }
    }

    /// Test-only (no API does it): sets how a campaign's counter lies; false when the campaign
    /// is unknown.
    pub fn set_counter(&self, display_id: &str, counter: Counter) -> bool {
        let mut st = self.lock();
        st.campaigns
            .get_mut(display_id)
            .map(|c| c.counter = counter)
            .is_some()
    }

    /// Every live campaign's rows, counter and how the counter lies, in listing order.
    pub fn counters(&self) -> Vec<CounterState> {
        let st = self.lock();
        st.ordered()
            .iter()
            .map(|c| CounterState {
                display_id: c.display_id.clone(),
                rows: c.rows().len() as u64,
                counter: c.counter_value(),
                lie: c.counter,
            })
            .collect()
    }

    /// Test-only (no API does it): replaces a campaign's store listings and bumps `update_at`.
    /// False when the campaign or a listing id is unknown.
    pub fn set_store_listings(&self, display_id: &str, store_listing_ids: &[&str]) -> bool {
        let mut st = self.lock();
        let now = st.now();
        let Ok(listings) = listing_indexes(store_listing_ids) else {
            return false;
        };
        let Some(c) = st.campaigns.get_mut(display_id) else {
            return false;
        };
        c.store_listings = listings;
        c.update_at = now;
        true
    }
}

/// Test-only steering of the Reporting API (no API does these).
impl Simulator {
    /// Makes the numbers of every day with sign-ups change: one more late install (and
    /// reinstall) on each, with its spend. Returns the new revision.
    pub fn bump_reporting_revision(&self) -> u64 {
        let mut st = self.lock();
        st.reporting_revision += 1;
        st.reporting_revision
    }

    /// Suspends the billing account (the Reporting API answers 402) or settles it.
    pub fn set_reporting_billing_suspended(&self, suspended: bool) {
        self.lock().config.reporting_billing_suspended = suspended;
    }

    /// Replaces the Reporting API's limit (`None` turns it off); its window starts empty.
    pub fn set_reporting_limit(&self, limit: Option<ReportingLimit>) {
        let mut st = self.lock();
        st.config.reporting_limit = limit;
        st.reporting_quota = Quota::default();
    }
}

/// A campaign's true row count beside what its counter says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CounterState {
    pub display_id: String,
    pub rows: u64,
    pub counter: u64,
    pub lie: Counter,
}
