//! A campaign's report over the asked project days: its numbers summed day by day, its
//! retention and its ad sets, and the value it is sorted by.

use super::adsets::{ad_sets, AdSet};
use super::format::divide;
use super::funnel::{DayKey, Funnel};
use super::query::{Request, View};
use crate::data::Campaign;
use crate::hash::mix;
use crate::row::Row;
use crate::state::State;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

const RETENTION: u64 = 0x2E7E;

/// What every campaign's report of one request shares.
pub(super) struct Scope {
    seed: u64,
    revision: u64,
    tz: Tz,
    view: View,
    to: Option<NaiveDate>,
    bounds: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

impl Scope {
    pub(super) fn new(st: &State, req: &Request) -> Scope {
        let tz = st.config.reporting_timezone;
        Scope {
            seed: st.config.seed,
            revision: st.reporting_revision,
            tz,
            view: req.view,
            to: req.to,
            bounds: req.bounds(tz),
        }
    }

    /// The campaign's rows on the asked days; none when it was created after them.
    fn rows<'c>(&self, c: &'c Campaign) -> Vec<&'c Row> {
        let created = c.created_at.with_timezone(&self.tz).date_naive();
        if self.to.is_some_and(|to| created > to) {
            return Vec::new();
        }
        let window = c.rows().window(self.bounds.0, self.bounds.1);
        window.page(0, window.len())
    }

    fn day_key(&self, c: &Campaign, day: NaiveDate) -> DayKey {
        DayKey {
            seed: self.seed,
            campaign: c.uid,
            day,
            revision: self.revision,
            paid: c.meta || c.google || c.apple_search_ads,
        }
    }
}

/// One campaign's numbers over the asked days.
pub(super) struct Report {
    pub(super) funnel: Funnel,
    /// Its attributed-user rows on those days, which its ad sets share the funnel by.
    pub(super) rows: u64,
    /// Day 1, 7, 14 and 30 retention in hundredths of a percent.
    pub(super) retention: [u64; 4],
    pub(super) ad_sets: Vec<AdSet>,
}

impl Report {
    pub(super) fn of(c: &Campaign, scope: &Scope) -> Report {
        let rows = scope.rows(c);
        let mut days: BTreeMap<NaiveDate, u64> = BTreeMap::new();
        for r in &rows {
            let day = r.attributed_at().with_timezone(&scope.tz).date_naive();
            *days.entry(day).or_default() += 1;
        }
        let funnel = days
            .into_iter()
            .map(|(day, s)| scope.day_key(c, day).funnel(scope.view, s))
            .fold(Funnel::default(), Funnel::plus);
        Report {
            funnel,
            rows: rows.len() as u64,
            retention: retention(scope.seed, c.uid, funnel.converted_from()),
            ad_sets: ad_sets(rows, &c.ad_context()),
        }
    }

    /// The value `sort_field` orders by: the number as shown (a ratio in hundredths).
    pub(super) fn sort_value(&self, c: &Campaign, field: &str) -> i64 {
        let f = &self.funnel;
        let value = match field {
            "created_at" => return c.created_at.timestamp_millis(),
            "clicks" => f.clicks,
            "signups" => f.signups,
            "revenue" => f.revenue,
            "spend" => f.spend,
            "uninstalls" => f.uninstalls,
            "conversion" => divide(f.signups, 10_000, f.converted_from()),
            "suspicious_installs" => f.suspicious,
            "roas" => divide(f.revenue, 100, f.spend),
            _ => f.installs,
        };
        i64::try_from(value).unwrap_or(i64::MAX)
    }
}

/// A campaign's retention curve, the same over any days: day 1 20–50%, then each step keeps
/// a seeded share of the one before. Zero without installs.
fn retention(seed: u64, campaign: u64, installs: u64) -> [u64; 4] {
    if installs == 0 {
        return [0; 4];
    }
    let h = mix(mix(seed ^ RETENTION) ^ campaign);
    let pick = |salt: u64, n: u64| mix(h ^ salt) % n;
    let d1 = 2_000 + pick(1, 3_001);
    let d7 = d1 * (40 + pick(2, 31)) / 100;
    let d14 = d7 * (70 + pick(3, 21)) / 100;
    let d30 = d14 * (60 + pick(4, 26)) / 100;
    [d1, d7, d14, d30]
}
