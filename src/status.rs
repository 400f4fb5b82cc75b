//! `linkrunner-sync status`: freshness per campaign and the last runs, as text or JSON.

use std::fmt::Write;

use chrono::{DateTime, Utc};

pub use crate::db::status::{load, CampaignStatus, RunStatus, Status};
use crate::terminal::printable;

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or("never".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%SZ").to_string()
    })
}

fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "never".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

/// The status as a table for people; text from the API is printed with its control characters
/// escaped.
pub fn render(status: &Status) -> String {
    let mut out = render_campaigns(status);
    if let Some(p) = &status.personal_data {
        let keys = if p.mode == "keep" {
            String::new()
        } else {
            format!(" ({})", printable(&p.keys.join(", ")))
        };
        let _ = writeln!(
            out,
            "personal data: {}{keys}; {} identifiers forgotten",
            p.mode, p.suppressed
        );
        if let Some(to) = &p.rewriting_to {
            let _ = writeln!(
                out,
                "a rewrite to {to} is half done ({} rows so far): the next run with those \
                 settings finishes it",
                p.rows_rewritten
            );
        }
    }
    for r in &status.reporting {
        let _ = writeln!(
            out,
            "reporting ({}, days of {}): {} to {}, {} days read, {} settled, {} missing, {} under way; last read {}",
            printable(&r.view),
            printable(&r.project_timezone),
            r.first_day,
            r.last_day,
            r.days_read,
            r.days_settled,
            r.days_missing,
            r.passes_under_way,
            time(r.last_read_at)
        );
    }
    let _ = writeln!(out, "\nlast runs:");
    for r in &status.runs {
        render_run(&mut out, r);
    }
    out
}

fn render_campaigns(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<8} {:>8}  {:<11} {:<21} {:<21} {:<21} {:>7}  {:<5} name",
        "campaign",
        "state",
        "rows",
        "counter",
        "last read because",
        "synced until",
        "last change",
        "behind",
        ""
    );
    for c in &status.campaigns {
        let _ = writeln!(
            out,
            "{:<14} {:<8} {:>8}  {:<11} {:<21} {:<21} {:<21} {:>7}  {:<5} {}",
            printable(&c.display_id),
            c.state,
            c.rows,
            c.counter,
            printable(c.read_because.as_deref().unwrap_or("-")),
            time(c.synced_until),
            time(c.last_change),
            age(c.behind_seconds),
            if c.stale { "STALE" } else { "" },
            printable(c.name.as_deref().unwrap_or_default())
        );
    }
    let _ = writeln!(
        out,
        "\n{} of {} campaigns behind by more than {}",
        status.stale,
        status.campaigns.len(),
        age(Some(status.max_lag_seconds))
    );
    out
}

fn render_run(out: &mut String, r: &RunStatus) {
    let seconds = r.finished_at.map_or("-".to_string(), |f| {
        format!(
            "{:.1}s",
            (f - r.started_at).num_milliseconds() as f64 / 1000.0
        )
    });
    let _ = writeln!(
        out,
        "{} {} {:<11} {:>6}s {:>7} requests {:>4} 429s {:>8} rows read {:>7} new {:>7} changed {:>4} rejected {:>4} forgotten {:>5} skipped {:>5} changed {:>5} untrusted {:>3} failed{}",
        time(Some(r.started_at)),
        r.run_id,
        printable(&r.outcome),
        seconds.trim_end_matches('s'),
        r.requests,
        r.rate_limited,
        r.rows_received,
        r.rows_inserted,
        r.rows_updated,
        r.rows_rejected,
        r.rows_forgotten,
        r.campaigns_skipped,
        r.campaigns_changed,
        r.campaigns_untrusted,
        r.campaigns_failed,
        r.error.as_deref().map(|e| format!("  error: {}", printable(e))).unwrap_or_default()
    );
    if r.reporting_requests > 0 || r.reporting_error.is_some() {
        let _ = writeln!(
            out,
            "    reporting: {} requests {} 429s {} days read {} values unparsed{}",
            r.reporting_requests,
            r.reporting_rate_limited,
            r.reporting_days,
            r.reporting_unparsed,
            r.reporting_error
                .as_deref()
                .map(|e| format!("  error: {}", printable(e)))
                .unwrap_or_default()
        );
    }
}
