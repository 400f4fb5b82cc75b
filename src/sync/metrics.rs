//! Prometheus metrics of a finished run: a file for node_exporter's textfile collector, or a
//! push to a Pushgateway. The exposition format is a handful of lines, written here directly:
//! the client crates speak OpenMetrics, whose `# EOF` trailer the textfile collector rejects.

use std::fmt::Write;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use url::Url;

use crate::model::figures::{Gauge, Labelled, Shown, Value};
use crate::model::run::{Outcome, RunReport};

/// The run as Prometheus text exposition, every series labelled with the run's `schema` (one
/// per project): the run's own gauges, then one per figure ([`figures`]).
pub fn render(report: &RunReport, exit_code: u8, schema: &str) -> String {
    let finished = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let run = [
        (
            "timestamp_seconds",
            "When the last run ended (Unix time).",
            finished,
        ),
        (
            "duration_seconds",
            "How long the last run took.",
            report.seconds,
        ),
        (
            "exit_code",
            "Exit code of the last run (see docs/operating.md, Exit codes).",
            f64::from(exit_code),
        ),
        (
            "success",
            "1 when the last run succeeded.",
            f64::from(u8::from(report.outcome == Outcome::Success)),
        ),
        (
            "interrupted",
            "1 when a signal stopped the last run.",
            f64::from(u8::from(report.outcome == Outcome::Interrupted)),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in run {
        gauge(&mut out, name, help, &[(String::new(), value)], schema);
    }
    gauges(&mut out, &report.totals.figures(), schema);
    out
}

/// The gauges of the figures: a gauge of its own each, or a value of a labelled one.
fn gauges(out: &mut String, figures: &[Shown], schema: &str) {
    let mut labelled: Vec<(&Labelled, Vec<(String, f64)>)> = Vec::new();
    for f in figures {
        let Value::Count(n) = f.value else {
            continue;
        };
        match f.gauge {
            Gauge::Own => gauge(out, f.name, f.help, &[(String::new(), n as f64)], schema),
            Gauge::Labelled(group, value) => {
                let series = format!(",{}=\"{value}\"", group.label);
                match labelled.iter_mut().find(|(g, _)| std::ptr::eq(*g, group)) {
                    Some((_, values)) => values.push((series, n as f64)),
                    None => labelled.push((group, vec![(series, n as f64)])),
                }
            }
            Gauge::None => {}
        }
    }
    for (group, values) in labelled {
        gauge(out, group.name, group.help, &values, schema);
    }
}

/// `linkrunner_sync_last_run_<name>`, one series per extra label set.
fn gauge(out: &mut String, name: &str, help: &str, series: &[(String, f64)], schema: &str) {
    let name = format!("linkrunner_sync_last_run_{name}");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in series {
        let _ = writeln!(out, "{name}{{schema=\"{schema}\"{labels}}} {value}");
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
    let response = crate::api::http::client(Default::default(), PUSH_TIME)?
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
                users: crate::model::run::UserTotals {
                    rows_inserted: 5000,
                    campaigns_untrusted: 3,
                    ..Default::default()
                },
                lookups: crate::model::run::LookupTotals {
                    not_found: 4,
                    ..Default::default()
                },
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
        // Five of the run, 21 figures of their own, six reasons a campaign is read, three
        // results of a look-up.
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 35);
        assert!(text.contains("linkrunner_sync_last_run_reporting_pages{schema=\"app2\"} 0\n"));
    }
}
