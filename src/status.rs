//! `linkrunner-sync status`: freshness per campaign and the last runs, as text or JSON.

use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::terminal::printable;

#[derive(Debug, Serialize)]
pub struct CampaignStatus {
    pub display_id: String,
    pub name: Option<String>,
    /// active, inactive or deleted
    pub state: &'static str,
    pub rows: i64,
    pub covered_from: Option<DateTime<Utc>>,
    pub synced_until: Option<DateTime<Utc>>,
    /// When a run last confirmed the campaign current: read it to its end, or found its
    /// trusted counter unchanged. An untrusted counter confirms nothing.
    pub checked_at: Option<DateTime<Utc>>,
    /// Whether its `attributed_users` counter has been seen to agree with its rows, so that a
    /// run may skip it while the counter stays put.
    pub counter_trusted: bool,
    /// The counter when a run last read the campaign to its end, and the rows it should count.
    pub counter_at_sync: Option<i64>,
    pub rows_at_sync: Option<i64>,
    /// When its rows last changed.
    pub last_change: Option<DateTime<Utc>>,
    pub behind_seconds: Option<i64>,
    /// Behind by more than the threshold (deleted campaigns never are).
    pub stale: bool,
}

#[derive(Debug, Serialize)]
pub struct RunStatus {
    pub run_id: uuid::Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub requests: i64,
    pub rate_limited: i64,
    pub retries: i64,
    pub rows_received: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_rejected: i64,
    pub campaigns_synced: i32,
    pub campaigns_skipped: i32,
    pub campaigns_changed: i32,
    pub campaigns_untrusted: i32,
    pub campaigns_failed: i32,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub max_lag_seconds: i64,
    pub stale: usize,
    pub campaigns: Vec<CampaignStatus>,
    pub runs: Vec<RunStatus>,
}

pub async fn load(pool: &PgPool, runs: i64, max_lag: Duration) -> sqlx::Result<Status> {
    let now = Utc::now();
    let campaigns = sqlx::query(
        // data_freshness holds the rule for when a campaign counts as confirmed current.
        "SELECT f.campaign_display_id AS display_id, f.campaign_name AS name, f.active,
                f.deleted, f.covered_from, f.synced_until,
                GREATEST(f.confirmed_at, f.synced_until) AS checked_at, f.counter_trusted,
                k.counter_at_sync, k.rows_at_sync,
                (SELECT count(*) FROM linkrunner.attributed_users a
                  WHERE a.campaign_display_id = f.campaign_display_id) AS rows,
                f.rows_changed_at AS last_change
         FROM linkrunner.data_freshness f
         LEFT JOIN linkrunner.sync_checkpoints k
           ON k.campaign_display_id = f.campaign_display_id
         ORDER BY f.campaign_display_id",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        let deleted: bool = r.get("deleted");
        let state = match (deleted, r.get::<Option<bool>, _>("active")) {
            (true, _) => "deleted",
            (false, Some(false)) => "inactive",
            _ => "active",
        };
        let checked_at: Option<DateTime<Utc>> = r.get("checked_at");
        let behind = checked_at.map(|t| now - t);
        CampaignStatus {
            display_id: r.get("display_id"),
            name: r.get("name"),
            state,
            rows: r.get("rows"),
            covered_from: r.get("covered_from"),
            synced_until: r.get("synced_until"),
            checked_at,
            counter_trusted: r.get("counter_trusted"),
            counter_at_sync: r.get("counter_at_sync"),
            rows_at_sync: r.get("rows_at_sync"),
            last_change: r.get("last_change"),
            behind_seconds: behind.map(|b| b.num_seconds()),
            stale: !deleted && behind.is_none_or(|b| b > max_lag),
        }
    })
    .collect::<Vec<_>>();
    let runs = sqlx::query(
        "SELECT run_id, started_at, finished_at, outcome, requests, rate_limited, retries,
                rows_received, rows_inserted, rows_updated, rows_rejected, campaigns_synced,
                campaigns_skipped, campaigns_changed, campaigns_untrusted, campaigns_failed, error
         FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT $1",
    )
    .bind(runs)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| RunStatus {
        run_id: r.get("run_id"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        outcome: r.get("outcome"),
        requests: r.get("requests"),
        rate_limited: r.get("rate_limited"),
        retries: r.get("retries"),
        rows_received: r.get("rows_received"),
        rows_inserted: r.get("rows_inserted"),
        rows_updated: r.get("rows_updated"),
        rows_rejected: r.get("rows_rejected"),
        campaigns_synced: r.get("campaigns_synced"),
        campaigns_skipped: r.get("campaigns_skipped"),
        campaigns_changed: r.get("campaigns_changed"),
        campaigns_untrusted: r.get("campaigns_untrusted"),
        campaigns_failed: r.get("campaigns_failed"),
        error: r.get("error"),
    })
    .collect();
    Ok(Status {
        max_lag_seconds: max_lag.num_seconds(),
        stale: campaigns.iter().filter(|c| c.stale).count(),
        campaigns,
        runs,
    })
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
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<8} {:>8}  {:<9} {:<21} {:<21} {:>7}  {:<5} name",
        "campaign", "state", "rows", "counter", "synced until", "last change", "behind", ""
    );
    for c in &status.campaigns {
        let _ = writeln!(
            out,
            "{:<14} {:<8} {:>8}  {:<9} {:<21} {:<21} {:>7}  {:<5} {}",
            printable(&c.display_id),
            c.state,
            c.rows,
            if c.counter_trusted {
                "trusted"
            } else {
                "untrusted"
            },
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
    let _ = writeln!(out, "\nlast runs:");
    for r in &status.runs {
        let seconds = r.finished_at.map_or("-".to_string(), |f| {
            format!(
                "{:.1}s",
                (f - r.started_at).num_milliseconds() as f64 / 1000.0
            )
        });
        let _ = writeln!(
            out,
            "{} {} {:<11} {:>6}s {:>7} requests {:>4} 429s {:>8} rows read {:>7} new {:>7} changed {:>4} rejected {:>5} skipped {:>5} changed {:>5} untrusted {:>3} failed{}",
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
            r.campaigns_skipped,
            r.campaigns_changed,
            r.campaigns_untrusted,
            r.campaigns_failed,
            r.error.as_deref().map(|e| format!("  error: {}", printable(e))).unwrap_or_default()
        );
    }
    out
}
