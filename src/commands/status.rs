//! `linkrunner-sync status`: freshness per campaign and the last runs, as text or JSON.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::cli::{OutputFormat, StatusArgs};
use crate::error::Failure;
use crate::output::secrets;
use crate::{config, db};

pub use crate::db::status::{load, CampaignStatus, Figure, RunStatus, Status};
use crate::model::figures::Shown;
use crate::output::terminal::printable;

/// Prints the status; exits 6 when a campaign is stale.
pub(super) async fn run(args: StatusArgs) -> Result<(), Failure> {
    let max_lag = args.max_lag;
    let schema = args.db.schema.clone();
    let options = config::waiting_database(&args.db, args.lock_timeout).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    db::prepare(&mut *db::session(&pool).await?, &schema).await?;
    let status = load(&schema, &pool, args.runs, max_lag)
        .await
        .map_err(|e| Failure::database(e, "reading the sync state"))?;
    // What the ledger holds came from servers: masked whatever its age.
    match args.format {
        OutputFormat::Text => print!("{}", secrets::redact(&render(&status))),
        OutputFormat::Json => println!(
            "{}",
            secrets::redact(&serde_json::to_string_pretty(&status).expect("status serializes"))
        ),
    }
    if status.stale > 0 {
        return Err(Failure::Stale(format!(
            "{} campaigns are behind by more than {}",
            status.stale,
            crate::model::time::human(args.max_lag)
        )));
    }
    Ok(())
}

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
            "{:.1}",
            (f - r.started_at).num_milliseconds() as f64 / 1000.0
        )
    });
    let _ = write!(
        out,
        "{} {} {:<11} {seconds:>6}s",
        time(Some(r.started_at)),
        r.run_id,
        printable(&r.outcome),
    );
    let figures = crate::model::figures::all();
    let on = |line: &'static str| figures.iter().filter(move |f| f.line == line);
    figures_line(out, r, on(""));
    if let Some(e) = &r.error {
        let _ = write!(out, "  error: {}", printable(e));
    }
    out.push('\n');
    // A stream's own line only when it did something.
    let mut lines: Vec<&'static str> = figures
        .iter()
        .map(|f| f.line)
        .filter(|l| !l.is_empty())
        .collect();
    lines.dedup();
    for line in lines {
        let busy = on(line).any(|f| match &r.figures[f.name] {
            Figure::Count(n) => *n > 0,
            Figure::Text(t) => t.is_some(),
        });
        if busy {
            let _ = write!(out, "    {line}");
            figures_line(out, r, on(line));
            out.push('\n');
        }
    }
}

/// The figures that `status` shows: counts as "12 requests", text as "  why: …".
fn figures_line<'f>(out: &mut String, r: &RunStatus, figures: impl Iterator<Item = &'f Shown>) {
    for f in figures {
        let Some(label) = f.text else {
            continue;
        };
        match &r.figures[f.name] {
            Figure::Count(n) => {
                let _ = write!(out, " {n} {label}");
            }
            Figure::Text(Some(t)) => {
                let _ = write!(out, "  {label}: {}", printable(t));
            }
            Figure::Text(None) => {}
        }
    }
}
