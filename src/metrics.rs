//! Prometheus metrics of a finished run: a file for node_exporter's textfile collector, or a
//! push to a Pushgateway. The exposition format is a handful of lines, written here directly:
//! the client crates speak OpenMetrics, whose `# EOF` trailer the textfile collector rejects.

use std::fmt::Write;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use url::Url;

use crate::model::run::{Outcome, RunReport};

/// The run as Prometheus text exposition, every series labelled with the run's `schema` (one
/// per project). Long only because it is the table of gauges, one entry each: name, help and
/// value side by side.
pub fn render(report: &RunReport, exit_code: u8, schema: &str) -> String {
    let t = &report.totals;
    let finished = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let gauges: [(&str, &str, f64); 21] = [
        (
            "last_run_timestamp_seconds",
            "When the last run ended (Unix time).",
            finished,
        ),
        (
            "last_run_duration_seconds",
            "How long the last run took.",
            report.seconds,
        ),
        (
            "last_run_exit_code",
            "Exit code of the last run (see the README).",
            f64::from(exit_code),
        ),
        (
            "last_run_success",
            "1 when the last run succeeded.",
            f64::from(u8::from(report.outcome == Outcome::Success)),
        ),
        ("last_run_requests", "API requests made.", t.requests as f64),
        (
            "last_run_rate_limited",
            "429 answers received.",
            t.rate_limited as f64,
        ),
        ("last_run_retries", "Requests retried.", t.retries as f64),
        (
            "last_run_rows_received",
            "Attributed-user rows received.",
            t.rows_received as f64,
        ),
        (
            "last_run_rows_inserted",
            "Rows new to the warehouse.",
            t.rows_inserted as f64,
        ),
        (
            "last_run_rows_updated",
            "Rows whose content changed.",
            t.rows_updated as f64,
        ),
        (
            "last_run_rows_rejected",
            "Rows kept in rejected_rows.",
            t.rows_rejected as f64,
        ),
        (
            "last_run_campaigns_listed",
            "Campaigns in the list.",
            t.campaigns_listed as f64,
        ),
        (
            "last_run_campaigns_synced",
            "Campaigns synced (read or confirmed unchanged).",
            t.campaigns_synced as f64,
        ),
        (
            "last_run_campaigns_skipped",
            "Campaigns confirmed unchanged by their trusted counters.",
            t.campaigns_skipped as f64,
        ),
        (
            "last_run_campaigns_failed",
            "Campaigns left for the next run.",
            t.campaigns_failed as f64,
        ),
        (
            "last_run_reporting_requests",
            "Reporting API requests made (429s included).",
            t.reporting.requests as f64,
        ),
        (
            "last_run_reporting_rate_limited",
            "Reporting API requests refused with 429.",
            t.reporting.rate_limited as f64,
        ),
        (
            "last_run_reporting_days",
            "Reporting days (per view) read to their last page.",
            t.reporting.days as f64,
        ),
        (
            "last_run_reporting_days_left",
            "Reporting days (per view) due that wait for the next run.",
            t.reporting.days_left as f64,
        ),
        (
            "last_run_reporting_unparsed",
            "Reporting API values that are not numbers in the documented form, stored as NULL.",
            t.reporting.unparsed as f64,
        ),
        (
            "last_run_interrupted",
            "1 when a signal stopped the last run.",
            f64::from(u8::from(report.outcome == Outcome::Interrupted)),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP linkrunner_sync_{name} {help}");
        let _ = writeln!(out, "# TYPE linkrunner_sync_{name} gauge");
        let _ = writeln!(out, "linkrunner_sync_{name}{{schema=\"{schema}\"}} {value}");
    }
    labelled(
        &mut out,
        schema,
        "campaigns_read",
        "Campaigns read, by why: never read before, counter moved, counter not trusted, full \
         scan due, or --since/--rescan.",
        "reason",
        &[
            ("new", t.campaigns_new),
            ("changed", t.campaigns_changed),
            ("untrusted", t.campaigns_untrusted),
            ("due", t.campaigns_due),
            ("requested", t.campaigns_requested),
        ],
    );
    labelled(
        &mut out,
        schema,
        "lookups",
        "Attribution look-ups, by what they came to: an attribution, none (204), or an answer \
         that could not be had or used.",
        "result",
        &[
            ("found", t.lookups_found),
            ("not_found", t.lookups_not_found),
            ("failed", t.lookups_failed),
        ],
    );
    out
}

/// A gauge with one value per label.
fn labelled(
    out: &mut String,
    schema: &str,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) {
    let name = format!("linkrunner_sync_last_run_{name}");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{schema=\"{schema}\",{label}=\"{value}\"}} {n}");
    }
}

/// Writes the file whole or not at all: the collector may read it at any moment. The text goes
/// to a temporary file of a name nobody can guess, created in the same directory without
/// following any link, and is then renamed over `path`; only a regular file, or nothing, is
/// replaced there.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    refuse_unless_regular(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".linkrunner_sync.")
        .suffix(".prom.tmp")
        // Readable by the collector, which may run as another user.
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// An error naming what sits at `path`, unless that is a regular file or nothing.
fn refuse_unless_regular(path: &Path) -> std::io::Result<()> {
    let kind = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) => meta.file_type(),
    };
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(std::io::Error::other(format!(
        "the metrics file {} is {what}; only a regular file is replaced, so it was left as it is",
        path.display()
    )))
}

/// Longest a push may take: a Pushgateway is a side channel, never worth holding a run up.
pub const PUSH_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Replaces this job's metrics for `schema` on a Pushgateway, under the job's outbound policy;
/// each project's schema is a group of its own, so projects never replace each other's.
pub async fn push(gateway: &Url, text: String, schema: &str) -> anyhow::Result<()> {
    let url = gateway.join(&format!("metrics/job/linkrunner_sync/schema/{schema}"))?;
    let response = crate::outbound::client(Default::default(), PUSH_TIME)?
        .put(url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(text)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "Pushgateway answered HTTP {}",
        response.status()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::RunTotals;

    #[test]
    fn renders_one_gauge_per_figure() {
        let report = RunReport {
            run_id: uuid::Uuid::nil(),
            outcome: Outcome::Success,
            totals: RunTotals {
                requests: 27,
                rows_inserted: 5000,
                campaigns_untrusted: 3,
                lookups_not_found: 4,
                reporting: crate::model::run::ReportingTotals {
                    rate_limited: 2,
                    ..Default::default()
                },
                ..RunTotals::default()
            },
            seconds: 2.5,
        };
        let text = render(&report, 0, "app2");
        assert!(text.contains("linkrunner_sync_last_run_requests{schema=\"app2\"} 27\n"));
        assert!(text.contains("linkrunner_sync_last_run_rows_inserted{schema=\"app2\"} 5000\n"));
        assert!(text.contains("linkrunner_sync_last_run_success{schema=\"app2\"} 1\n"));
        assert!(text.contains(
            "linkrunner_sync_last_run_campaigns_read{schema=\"app2\",reason=\"untrusted\"} 3\n"
        ));
        assert!(text.contains(
            "linkrunner_sync_last_run_lookups{schema=\"app2\",result=\"not_found\"} 4\n"
        ));
        assert!(
            text.contains("linkrunner_sync_last_run_reporting_rate_limited{schema=\"app2\"} 2\n")
        );
        // 21 gauges, five reasons a campaign is read, three results of a look-up.
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 29);
    }
}
