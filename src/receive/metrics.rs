//! The receiver's `/metrics`: its counters since it started, the spool's depth and the commit
//! latency, in Prometheus's text format (written directly, as the run's metrics are).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::spool::Spool;
use super::Counts;
use crate::model::webhook::EVENT_TYPES;

/// Upper bounds of the commit-latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 4.0];

/// A latency histogram: counts per bucket, and the sum in microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

const PREFIX: &str = "linkrunner_receive_";

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} {kind}"
    );
}

fn counter(out: &mut String, name: &str, help: &str, values: &[(&str, u64)]) {
    head(out, name, "counter", help);
    for (labels, value) in values {
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{PREFIX}{name}{labels} {value}");
    }
}

pub fn render(counts: &Counts, spool: Option<&Spool>) -> String {
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let kinds: Vec<String> = EVENT_TYPES
        .iter()
        .map(|t| format!("event_type=\"{t}\""))
        .chain(["event_type=\"unreadable\"".to_owned()])
        .collect();
    let acknowledged: Vec<(&str, u64)> = kinds
        .iter()
        .zip(&counts.acknowledged)
        .map(|(k, c)| (k.as_str(), n(c)))
        .collect();
    counter(
        &mut out,
        "acknowledged_total",
        "Deliveries answered 2xx (committed or spooled), by event type.",
        &acknowledged,
    );
    counter(
        &mut out,
        "stored_total",
        "Deliveries committed to Postgres, by what they came to.",
        &[
            ("outcome=\"new\"", n(&counts.events_new)),
            ("outcome=\"again\"", n(&counts.events_again)),
            ("outcome=\"suppressed\"", n(&counts.suppressed)),
            ("outcome=\"unreadable\"", n(&counts.unreadable)),
        ],
    );
    counter(
        &mut out,
        "refused_total",
        "Deliveries answered with an error, by reason (Linkrunner sends again after 1, 2 and 4 s).",
        &[
            ("reason=\"unauthorized\"", n(&counts.unauthorized)),
            ("reason=\"not_stored\"", n(&counts.refused)),
            ("reason=\"too_large\"", n(&counts.too_large)),
            ("reason=\"too_slow\"", n(&counts.too_slow)),
        ],
    );
    counter(
        &mut out,
        "spooled_total",
        "Deliveries written to the spool while Postgres could not take them.",
        &[("", n(&counts.spooled))],
    );
    counter(
        &mut out,
        "drained_total",
        "Spooled deliveries since stored in Postgres.",
        &[("", n(&counts.drained))],
    );
    let (bytes, segments, max) = spool.map_or((0, 0, 0), |s| {
        (s.bytes(), s.segments() as u64, s.max_bytes())
    });
    for (name, help, value) in [
        ("spool_bytes", "Bytes waiting in the spool.", bytes),
        ("spool_segments", "Files of the spool on disk.", segments),
        (
            "spool_max_bytes",
            "The spool's bound (--spool-max-mib); 0 without a spool.",
            max,
        ),
    ] {
        head(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{PREFIX}{name} {value}");
    }
    let name = "commit_seconds";
    head(
        &mut out,
        name,
        "histogram",
        "Time to commit a group of deliveries to Postgres.",
    );
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(&counts.commits.buckets) {
        cumulative += n(count);
        let _ = writeln!(out, "{PREFIX}{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let total = n(&counts.commits.count);
    let _ = writeln!(out, "{PREFIX}{name}_bucket{{le=\"+Inf\"}} {total}");
    let sum = n(&counts.commits.sum_micros) as f64 / 1e6;
    let _ = writeln!(
        out,
        "{PREFIX}{name}_sum {sum}\n{PREFIX}{name}_count {total}"
    );
    out
}
