//! A campaign's attributed-user rows in served order, with an index by `attributed_at`, so a
//! page of a time window costs about the page, not the whole campaign.

use crate::row::Row;
use chrono::{DateTime, Utc};

/// Rows in served order, plus each row's `(attributed_at, order)` sorted, so a window's rows are
/// one slice of the index.
#[derive(Default)]
pub(crate) struct Rows {
    list: Vec<Row>,
    by_time: Vec<(DateTime<Utc>, u64)>,
}

impl Rows {
    pub(crate) fn new(list: Vec<Row>, salt: u64) -> Rows {
        let mut rows = Rows {
            list,
            by_time: Vec::new(),
        };
        rows.resalt(salt);
        rows
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Row> {
        self.list.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Row> {
        self.list.iter_mut()
    }

    /// Adds a row at its place under `salt`.
    pub(crate) fn insert(&mut self, mut row: Row, salt: u64) {
        row.place(salt);
        let key = (row.attributed_at(), row.order());
        let t = self.by_time.partition_point(|k| *k < key);
        self.by_time.insert(t, key);
        let at = self.list.partition_point(|r| r.order() < row.order());
        self.list.insert(at, row);
    }

    /// Takes out the row at `order`.
    pub(crate) fn remove(&mut self, order: u64) -> Option<Row> {
        let at = self.list.binary_search_by_key(&order, Row::order).ok()?;
        let row = self.list.remove(at);
        let t = self.by_time.binary_search(&(row.attributed_at(), order));
        self.by_time.remove(t.expect("every row is indexed"));
        Some(row)
    }

    /// Re-orders every row under a new salt; the served texts do not depend on the order.
    pub(crate) fn resalt(&mut self, salt: u64) {
        for r in &mut self.list {
            r.place(salt);
        }
        self.list.sort_unstable_by_key(Row::order);
        self.by_time = self
            .list
            .iter()
            .map(|r| (r.attributed_at(), r.order()))
            .collect();
        self.by_time.sort_unstable();
    }

    /// Drops every served text, when something they were rendered from changed.
    pub(crate) fn forget_served(&mut self) {
        self.list.iter_mut().for_each(Row::forget_served);
    }

    /// The rows with `attributed_at` in `[start, end]` (a missing bound is open).
    pub(crate) fn window(
        &self,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Window<'_> {
        let lo = start.map_or(0, |s| self.by_time.partition_point(|k| k.0 < s));
        let hi = end.map_or(self.len(), |e| self.by_time.partition_point(|k| k.0 <= e));
        Window {
            rows: self,
            lo,
            hi: hi.max(lo),
        }
    }

    /// The row at `order`, if there is one.
    pub(crate) fn find(&self, order: u64) -> Option<&Row> {
        let at = self.list.binary_search_by_key(&order, Row::order).ok()?;
        Some(&self.list[at])
    }

    fn get(&self, order: u64) -> &Row {
        let at = self.list.binary_search_by_key(&order, Row::order);
        &self.list[at.expect("indexed rows exist")]
    }
}

/// The rows of a time window, in served order; `lo..hi` is their slice of the time index.
pub(crate) struct Window<'a> {
    rows: &'a Rows,
    lo: usize,
    hi: usize,
}

impl<'a> Window<'a> {
    pub(crate) fn len(&self) -> usize {
        self.hi - self.lo
    }

    /// The window's rows at places `skip..skip + limit` of the served order.
    pub(crate) fn page(&self, skip: usize, limit: usize) -> Vec<&'a Row> {
        let end = skip.saturating_add(limit).min(self.len());
        if skip >= end {
            return Vec::new();
        }
        if self.len() == self.rows.len() {
            return self.rows.list[skip..end].iter().collect();
        }
        // Orders sort like the served list, so the page is the window's orders ranked
        // skip..end: two linear selections, then a sort of the page alone.
        let by_time = &self.rows.by_time[self.lo..self.hi];
        let mut orders: Vec<u64> = by_time.iter().map(|k| k.1).collect();
        if end < orders.len() {
            orders.select_nth_unstable(end);
            orders.truncate(end);
        }
        orders.select_nth_unstable(skip);
        let page = &mut orders[skip..];
        page.sort_unstable();
        page.iter().map(|&o| self.rows.get(o)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::mix;
    use chrono::{TimeDelta, TimeZone};
    use serde_json::Map;

    fn row(uid: u64) -> Row {
        let base = Utc.timestamp_millis_opt(1_780_000_000_000).unwrap();
        // Few distinct instants, so windows cut through runs of equal times.
        let at = base + TimeDelta::milliseconds((mix(uid) % 40) as i64);
        Row::new(uid, at, None, Map::new())
    }

    fn uids(rows: &[&Row]) -> Vec<u64> {
        rows.iter().map(|r| r.uid()).collect()
    }

    /// The window the plain way: filter the served list.
    fn filtered(rows: &Rows, lo: Option<i64>, hi: Option<i64>) -> Vec<&Row> {
        let t = |ms: i64| Utc.timestamp_millis_opt(1_780_000_000_000 + ms).unwrap();
        let keep = |r: &&Row| {
            let at = r.attributed_at();
            lo.is_none_or(|s| at >= t(s)) && hi.is_none_or(|e| at <= t(e))
        };
        rows.iter().filter(keep).collect()
    }

    fn check_windows(rows: &Rows) {
        let t = |ms: i64| Utc.timestamp_millis_opt(1_780_000_000_000 + ms).unwrap();
        let bounds = [
            None,
            Some(-5),
            Some(0),
            Some(7),
            Some(20),
            Some(39),
            Some(60),
        ];
        for lo in bounds {
            for hi in bounds {
                let expected = filtered(rows, lo, hi);
                let window = rows.window(lo.map(t), hi.map(t));
                assert_eq!(window.len(), expected.len(), "{lo:?}..{hi:?}");
                for (skip, limit) in [(0, 1), (0, 7), (3, 7), (10, 1000), (0, 1000), (400, 9)] {
                    let page: Vec<&Row> = expected.iter().copied().skip(skip).take(limit).collect();
                    assert_eq!(uids(&window.page(skip, limit)), uids(&page));
                }
            }
        }
    }

    #[test]
    fn window_pages_match_filtering_the_served_list() {
        let mut rows = Rows::new((0..300).map(row).collect(), 5);
        check_windows(&rows);
        (1000..1040).for_each(|uid| rows.insert(row(uid), 5));
        let gone: Vec<u64> = rows.iter().step_by(7).map(Row::order).collect();
        for order in gone {
            assert!(rows.remove(order).is_some());
        }
        check_windows(&rows);
        rows.resalt(77);
        check_windows(&rows);
        assert!(rows.list.windows(2).all(|w| w[0].order() < w[1].order()));
    }

    #[test]
    fn resalting_keeps_rows_but_changes_their_order() {
        let mut rows = Rows::new((0..50).map(row).collect(), 1);
        let before: Vec<u64> = rows.iter().map(Row::uid).collect();
        rows.resalt(99);
        let after: Vec<u64> = rows.iter().map(Row::uid).collect();
        assert_ne!(before, after);
        let (mut a, mut b) = (before, after);
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
