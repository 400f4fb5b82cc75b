//! Which days of the Reporting API a run asks for, and in what order. Days are local days of
//! the project's timezone. Recent days come first, newest first: their numbers still move
//! (late installs, spend imported later, retention filling in). Then the days of a backfill,
//! oldest first, each read until it is settled: read in full after it left the lookback.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// How far a day is read, as `reporting_days` keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayState {
    /// The page a pass under way asks next; 1 when none is under way.
    pub next_page: u32,
    /// When the last full read ended.
    pub read_at: Option<DateTime<Utc>>,
    pub settled: bool,
    /// The campaigns the list held when the pass under way read its first page.
    pub pass_total: Option<u64>,
}

/// A day to read, from this page on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub day: NaiveDate,
    pub page: u32,
    /// Of a pass under way: the campaigns the list held at its first page.
    pub pass_total: Option<u64>,
}

/// What the days due follow from.
#[derive(Clone, Copy, Debug)]
pub struct DayPlan {
    /// Today in the project's timezone.
    pub today: NaiveDate,
    /// The last day wanted (`--until`); today when it is later.
    pub last: NaiveDate,
    /// The first day wanted (`--since`, or the default).
    pub first: NaiveDate,
    /// Days before today whose numbers are still read again.
    pub lookback_days: u32,
    /// A recent day read longer ago than this is read again.
    pub refresh: Duration,
    /// The time a day's `read_at` is compared with: the database's clock, which wrote it.
    pub now: DateTime<Utc>,
    /// Read settled days again, each unless read within `refresh`: a rescan cut short by the
    /// requests of one run goes on in the next.
    pub rescan: bool,
}

impl DayPlan {
    /// The first day still inside the lookback.
    fn recent_from(&self) -> NaiveDate {
        self.today - Duration::days(i64::from(self.lookback_days))
    }

    /// Whether a day read in full now is settled.
    pub fn settles(&self, day: NaiveDate) -> bool {
        day < self.recent_from()
    }

    /// The days to read, in order: recent ones newest first, then older ones oldest first.
    pub fn due(&self, known: &BTreeMap<NaiveDate, DayState>) -> Vec<Due> {
        let mut due = Vec::new();
        let recent_from = self.recent_from().max(self.first);
        let stale = |s: &DayState| s.read_at.is_none_or(|t| self.now - t >= self.refresh);
        let last = self.last.min(self.today);
        for day in days(recent_from, last).rev() {
            match known.get(&day) {
                Some(s) if s.next_page > 1 => due.push(Due::going_on(day, s)),
                Some(s) if !stale(s) => {}
                _ => due.push(Due::new(day)),
            }
        }
        let backfill_to = self.recent_from().pred_opt().unwrap_or(self.first);
        for day in days(self.first, backfill_to.min(last)) {
            match known.get(&day) {
                Some(s) if s.next_page > 1 => due.push(Due::going_on(day, s)),
                Some(s) if s.settled && !(self.rescan && stale(s)) => {}
                _ => due.push(Due::new(day)),
            }
        }
        due
    }
}

impl Due {
    fn new(day: NaiveDate) -> Due {
        Due {
            day,
            page: 1,
            pass_total: None,
        }
    }

    fn going_on(day: NaiveDate, state: &DayState) -> Due {
        Due {
            day,
            page: state.next_page,
            pass_total: state.pass_total,
        }
    }

    /// Whether the day's numbers may still move.
    pub fn recent(&self, plan: &DayPlan) -> bool {
        !plan.settles(self.day)
    }
}

/// The days from `first` to `last`, both included; none when `first` is after `last`.
fn days(first: NaiveDate, last: NaiveDate) -> impl DoubleEndedIterator<Item = NaiveDate> {
    let n = (last - first).num_days().max(-1) + 1;
    (0..n).map(move |i| first + Duration::days(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn plan(first: NaiveDate) -> DayPlan {
        DayPlan {
            today: day(20),
            last: day(20),
            first,
            lookback_days: 7,
            refresh: Duration::hours(1),
            now: "2026-11-20T12:00:00Z".parse().unwrap(),
            rescan: false,
        }
    }

    fn days_of(due: &[Due]) -> Vec<u32> {
        use chrono::Datelike;
        due.iter().map(|d| d.day.day()).collect()
    }

    #[test]
    fn recent_days_come_first_newest_first_then_the_backfill_oldest_first() {
        let due = plan(day(10)).due(&BTreeMap::new());
        assert_eq!(days_of(&due), [20, 19, 18, 17, 16, 15, 14, 13, 10, 11, 12]);
        assert!(due.iter().all(|d| d.page == 1));
    }

    #[test]
    fn a_recent_day_read_lately_waits_and_a_pass_under_way_goes_on() {
        let p = plan(day(18));
        let read = |ago: i64| DayState {
            next_page: 1,
            read_at: Some(p.now - Duration::minutes(ago)),
            settled: false,
            pass_total: None,
        };
        let known = BTreeMap::from([
            (day(20), read(10)),
            (day(19), read(90)),
            (
                day(18),
                DayState {
                    next_page: 3,
                    pass_total: Some(140),
                    ..read(10)
                },
            ),
        ]);
        let due = p.due(&known);
        assert_eq!(
            due,
            [
                Due {
                    day: day(19),
                    page: 1,
                    pass_total: None
                },
                Due {
                    day: day(18),
                    page: 3,
                    pass_total: Some(140)
                }
            ]
        );
    }

    #[test]
    fn a_settled_day_is_read_again_only_on_rescan() {
        let settled = DayState {
            next_page: 1,
            read_at: Some("2026-11-19T00:00:00Z".parse().unwrap()),
            settled: true,
            pass_total: None,
        };
        let unsettled = DayState {
            settled: false,
            ..settled
        };
        let known = BTreeMap::from([(day(11), settled), (day(12), unsettled)]);
        let mut p = plan(day(11));
        assert_eq!(days_of(&p.due(&known))[8..], [12]);
        p.rescan = true;
        assert_eq!(days_of(&p.due(&known))[8..], [11, 12]);
        // A rescan goes on from where the last run's requests ran out.
        let rescanned = DayState {
            read_at: Some(p.now - Duration::minutes(5)),
            ..settled
        };
        let known = BTreeMap::from([(day(11), rescanned), (day(12), unsettled)]);
        assert_eq!(days_of(&p.due(&known))[8..], [12]);
        assert!(p.settles(day(12)) && !p.settles(day(13)));
    }

    #[test]
    fn nothing_is_due_before_the_first_day_or_after_today_or_the_last() {
        assert_eq!(days_of(&plan(day(19)).due(&BTreeMap::new())), [20, 19]);
        assert!(plan(day(21)).due(&BTreeMap::new()).is_empty());
        let mut p = plan(day(10));
        p.last = day(15);
        assert_eq!(days_of(&p.due(&BTreeMap::new())), [15, 14, 13, 10, 11, 12]);
        p.last = day(11);
        assert_eq!(days_of(&p.due(&BTreeMap::new())), [10, 11]);
    }
}
