//! A run's figures, declared once: each is a column of the ledger (`sync_runs`), a key of
//! `status --json` and a field of its text, and (unless it is text) a gauge of the metrics,
//! all under one name. A new figure is one entry here plus the migration adding its column.

use super::run::{LookupTotals, ReportingTotals, RunTotals, UserTotals};

/// A figure's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Count(u64),
    /// Why a stream stopped short, if it did; masked before it is stored.
    Text(Option<String>),
}

/// How the metrics show a figure.
#[derive(Clone, Copy, Debug)]
pub enum Gauge {
    /// `linkrunner_sync_last_run_<name>`.
    Own,
    /// One value of a gauge with a label, under the value `.1`.
    Labelled(&'static Labelled, &'static str),
    /// Not a gauge (text).
    None,
}

/// A gauge with one value per label, made of several figures.
#[derive(Debug)]
pub struct Labelled {
    pub name: &'static str,
    pub help: &'static str,
    pub label: &'static str,
}

/// A figure of the totals `T`.
pub struct Figure<T> {
    /// The ledger's column, the metric's name after `linkrunner_sync_last_run_`, the key of
    /// `status --json`.
    pub name: &'static str,
    pub help: &'static str,
    /// How `status` shows it after its value ("429s" in "3 429s"); None: only in JSON.
    pub text: Option<&'static str>,
    pub gauge: Gauge,
    pub value: fn(&T) -> Value,
}

/// Totals whose figures are declared: each stream's, stored in the ledger by the stream that
/// counts them.
pub trait Figures: Default + Sized + 'static {
    const FIGURES: &'static [Figure<Self>];
    /// Where `status` shows the figures: "" on the run's own line, else a line of their own
    /// starting so ("reporting:"), shown when the stream did something.
    const LINE: &'static str;
    /// Whether the stream records them itself: it goes on after the run's end is recorded.
    const RECORDED_BY_STREAM: bool = false;
}

/// A figure with its value, whatever totals hold it.
#[derive(Clone, Debug)]
pub struct Shown {
    pub name: &'static str,
    pub help: &'static str,
    pub text: Option<&'static str>,
    pub gauge: Gauge,
    /// [`Figures::LINE`] of its totals.
    pub line: &'static str,
    /// [`Figures::RECORDED_BY_STREAM`] of its totals.
    pub recorded_by_stream: bool,
    pub value: Value,
}

impl Shown {
    pub fn is_text(&self) -> bool {
        matches!(self.value, Value::Text(_))
    }
}

/// The figures of `totals`, with their values.
pub fn shown<T: Figures>(totals: &T) -> impl Iterator<Item = Shown> + '_ {
    T::FIGURES.iter().map(move |f| Shown {
        name: f.name,
        help: f.help,
        text: f.text,
        gauge: f.gauge,
        line: T::LINE,
        recorded_by_stream: T::RECORDED_BY_STREAM,
        value: (f.value)(totals),
    })
}

impl RunTotals {
    /// Every figure with its value: the run's own, then each stream's, in the order `status`
    /// shows them. A new stream's totals are one line here.
    pub fn figures(&self) -> Vec<Shown> {
        shown(self)
            .chain(shown(&self.users))
            .chain(shown(&self.lookups))
            .chain(shown(&self.reporting))
            .collect()
    }
}

/// Every figure, as the ledger and the docs know it.
pub fn all() -> Vec<Shown> {
    RunTotals::default().figures()
}

/// Every figure's name: the ledger's columns.
pub fn names() -> impl Iterator<Item = &'static str> {
    all().into_iter().map(|f| f.name)
}

const CAMPAIGNS_READ: Labelled = Labelled {
    name: "campaigns_read",
    help: "Campaigns read, by why: never read before, counter moved, counter not trusted, full \
           scan due, --since/--rescan, or a signup webhook.",
    label: "reason",
};

const LOOKUPS: Labelled = Labelled {
    name: "lookups",
    help: "Attribution look-ups, by what they came to: an attribution, none (204), or an answer \
           that could not be had or used.",
    label: "result",
};

/// A figure counted in a `u64` field.
macro_rules! count {
    ($name:literal, $help:literal, $text:expr, $gauge:expr, |$t:ident| $value:expr) => {
        Figure {
            name: $name,
            help: $help,
            text: $text,
            gauge: $gauge,
            value: |$t| Value::Count($value),
        }
    };
}

impl Figures for RunTotals {
    const LINE: &'static str = "";
    const FIGURES: &'static [Figure<RunTotals>] = &[
        count!(
            "requests",
            "API requests made.",
            Some("requests"),
            Gauge::Own,
            |t| t.requests
        ),
        count!(
            "rate_limited",
            "429 answers received.",
            Some("429s"),
            Gauge::Own,
            |t| t.rate_limited
        ),
        count!("retries", "Requests retried.", None, Gauge::Own, |t| t
            .retries),
    ];
}

impl Figures for UserTotals {
    const LINE: &'static str = "";
    const FIGURES: &'static [Figure<UserTotals>] = &[
        count!(
            "rows_received",
            "Attributed-user rows received.",
            Some("rows read"),
            Gauge::Own,
            |t| t.rows_received
        ),
        count!(
            "rows_inserted",
            "Rows new to the warehouse.",
            Some("new"),
            Gauge::Own,
            |t| t.rows_inserted
        ),
        count!(
            "rows_updated",
            "Rows whose content changed.",
            Some("changed"),
            Gauge::Own,
            |t| t.rows_updated
        ),
        count!(
            "rows_rejected",
            "Rows kept in rejected_rows.",
            Some("rejected"),
            Gauge::Own,
            |t| t.rows_rejected
        ),
        count!(
            "rows_forgotten",
            "Rows of people forget erased, dropped at the door.",
            Some("forgotten"),
            Gauge::Own,
            |t| t.rows_forgotten
        ),
        count!(
            "campaigns_listed",
            "Campaigns in the list.",
            None,
            Gauge::Own,
            |t| t.campaigns_listed
        ),
        count!(
            "campaigns_synced",
            "Campaigns synced (read or confirmed unchanged).",
            None,
            Gauge::Own,
            |t| t.campaigns_synced
        ),
        count!(
            "campaigns_skipped",
            "Campaigns confirmed unchanged by their trusted counters.",
            Some("skipped"),
            Gauge::Own,
            |t| t.campaigns_skipped
        ),
        count!(
            "campaigns_new",
            "Campaigns read because never read to a run's end before.",
            None,
            Gauge::Labelled(&CAMPAIGNS_READ, "new"),
            |t| t.campaigns_new
        ),
        count!(
            "campaigns_changed",
            "Campaigns read because their trusted counter moved.",
            Some("moved"),
            Gauge::Labelled(&CAMPAIGNS_READ, "changed"),
            |t| t.campaigns_changed
        ),
        count!(
            "campaigns_untrusted",
            "Campaigns read because their counter is not trusted (it disagreed, or has agreed \
             only at zero).",
            Some("untrusted"),
            Gauge::Labelled(&CAMPAIGNS_READ, "untrusted"),
            |t| t.campaigns_untrusted
        ),
        count!(
            "campaigns_due",
            "Campaigns read because --full-scan-every came round.",
            None,
            Gauge::Labelled(&CAMPAIGNS_READ, "due"),
            |t| t.campaigns_due
        ),
        count!(
            "campaigns_requested",
            "Campaigns read because --since or --rescan asked for them.",
            None,
            Gauge::Labelled(&CAMPAIGNS_READ, "requested"),
            |t| t.campaigns_requested
        ),
        count!(
            "campaigns_pushed",
            "Campaigns read because a signup webhook marked them, their trusted counter unmoved.",
            None,
            Gauge::Labelled(&CAMPAIGNS_READ, "webhook"),
            |t| t.campaigns_pushed
        ),
        count!(
            "campaigns_failed",
            "Campaigns left for the next run.",
            Some("failed"),
            Gauge::Own,
            |t| t.campaigns_failed
        ),
    ];
}

impl Figures for LookupTotals {
    const LINE: &'static str = "";
    const FIGURES: &'static [Figure<LookupTotals>] = &[
        count!(
            "lookups",
            "Attribution look-ups made.",
            Some("look-ups"),
            Gauge::Own,
            |t| t.made
        ),
        count!(
            "lookups_found",
            "Look-ups that found an attribution.",
            None,
            Gauge::Labelled(&LOOKUPS, "found"),
            |t| t.found
        ),
        count!(
            "lookups_not_found",
            "Look-ups answered 204: no attribution.",
            None,
            Gauge::Labelled(&LOOKUPS, "not_found"),
            |t| t.not_found
        ),
        count!(
            "lookups_failed",
            "Look-ups whose answer could not be had or used.",
            None,
            Gauge::Labelled(&LOOKUPS, "failed"),
            |t| t.failed
        ),
        Figure {
            name: "lookups_stopped",
            help: "Why the look-ups stopped before the ids due were done (their deadline, a \
                   Retry-After longer than it, failures in a row), if they did.",
            text: Some("look-ups stopped"),
            gauge: Gauge::None,
            value: |t| Value::Text(t.stopped.clone()),
        },
    ];
}

impl Figures for ReportingTotals {
    const LINE: &'static str = "reporting:";
    // Reporting goes on without the run lock, after the run's end is recorded.
    const RECORDED_BY_STREAM: bool = true;
    const FIGURES: &'static [Figure<ReportingTotals>] = &[
        count!(
            "reporting_requests",
            "Reporting API requests made (429s included).",
            Some("requests"),
            Gauge::Own,
            |t| t.requests
        ),
        count!(
            "reporting_rate_limited",
            "Reporting API requests refused with 429.",
            Some("429s"),
            Gauge::Own,
            |t| t.rate_limited
        ),
        count!(
            "reporting_days",
            "Reporting days (per view) read to their last page.",
            Some("days read"),
            Gauge::Own,
            |t| t.days
        ),
        count!(
            "reporting_days_left",
            "Reporting days (per view) due that wait for the next run.",
            Some("days left"),
            Gauge::Own,
            |t| t.days_left
        ),
        count!(
            "reporting_pages",
            "Reporting API pages read.",
            None,
            Gauge::Own,
            |t| t.pages
        ),
        count!(
            "reporting_rows_inserted",
            "Reporting rows new to the warehouse.",
            None,
            Gauge::Own,
            |t| t.rows_inserted
        ),
        count!(
            "reporting_rows_changed",
            "Reporting rows whose numbers changed since they were last read.",
            None,
            Gauge::Own,
            |t| t.rows_changed
        ),
        count!(
            "reporting_unparsed",
            "Reporting API values that are not numbers in the documented form, stored as NULL.",
            Some("values unparsed"),
            Gauge::Own,
            |t| t.unparsed
        ),
        Figure {
            name: "reporting_error",
            help: "Why reporting stopped short: a suspended billing account, requests that kept \
                   failing, --reporting-time come round, a Retry-After longer than it.",
            text: Some("error"),
            gauge: Gauge::None,
            value: |t| Value::Text(t.error.clone()),
        },
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_column_names() {
        let names: Vec<_> = names().collect();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for name in names {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn each_figure_reads_its_own_field() {
        // Distinct values in every field: a figure reading another's field shows here.
        let t = RunTotals {
            requests: 1,
            rate_limited: 2,
            retries: 3,
            users: UserTotals {
                campaigns_listed: 4,
                campaigns_synced: 5,
                campaigns_skipped: 6,
                campaigns_new: 7,
                campaigns_changed: 8,
                campaigns_untrusted: 9,
                campaigns_due: 10,
                campaigns_requested: 11,
                campaigns_pushed: 30,
                campaigns_failed: 12,
                rows_received: 13,
                rows_inserted: 14,
                rows_updated: 15,
                rows_rejected: 16,
                rows_forgotten: 17,
            },
            lookups: LookupTotals {
                made: 18,
                found: 19,
                not_found: 20,
                failed: 21,
                stopped: Some("stopped".into()),
            },
            reporting: ReportingTotals {
                requests: 22,
                rate_limited: 23,
                days: 24,
                pages: 25,
                rows_inserted: 26,
                rows_changed: 27,
                unparsed: 28,
                days_left: 29,
                error: Some("failed".into()),
            },
        };
        let figures = t.figures();
        let mut counts: Vec<u64> = figures
            .iter()
            .filter_map(|f| match f.value {
                Value::Count(n) => Some(n),
                Value::Text(_) => None,
            })
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=30).collect::<Vec<_>>());
        let texts: Vec<_> = figures
            .iter()
            .filter_map(|f| match &f.value {
                Value::Text(t) => Some((f.name, t.clone().unwrap())),
                Value::Count(_) => None,
            })
            .collect();
        assert_eq!(
            texts,
            [
                ("lookups_stopped", "stopped".to_string()),
                ("reporting_error", "failed".to_string())
            ]
        );
    }
}
