//! `linkrunner-sync status`: checkpoints per campaign and the last runs.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

/// Renders the status report as text.
pub async fn report(pool: &PgPool, runs: i64) -> sqlx::Result<String> {
    let mut out = String::new();
    let campaigns = sqlx::query(
        "SELECT c.display_id, c.name, c.active, c.deleted_at, k.covered_from, k.synced_until,
                (SELECT count(*) FROM linkrunner.attributed_users a
                  WHERE a.campaign_display_id = c.display_id) AS rows
         FROM linkrunner.campaigns c
         LEFT JOIN linkrunner.sync_checkpoints k ON k.campaign_display_id = c.display_id
         ORDER BY c.display_id",
    )
    .fetch_all(pool)
    .await?;
    let _ = writeln!(
        out,
        "{:<14} {:<8} {:>8}  {:<24} {:<24} name",
        "campaign", "state", "rows", "covered from", "synced until"
    );
    for r in &campaigns {
        let state = match (
            r.get::<Option<DateTime<Utc>>, _>("deleted_at"),
            r.get::<Option<bool>, _>("active"),
        ) {
            (Some(_), _) => "deleted",
            (None, Some(false)) => "inactive",
            _ => "active",
        };
        let time = |col: &str| {
            r.get::<Option<DateTime<Utc>>, _>(col)
                .map_or("never".to_string(), |t| {
                    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
                })
        };
        let _ = writeln!(
            out,
            "{:<14} {:<8} {:>8}  {:<24} {:<24} {}",
            r.get::<String, _>("display_id"),
            state,
            r.get::<i64, _>("rows"),
            time("covered_from"),
            time("synced_until"),
            r.get::<Option<String>, _>("name").unwrap_or_default()
        );
    }
    let recent = sqlx::query(
        "SELECT run_id, started_at, finished_at, outcome, requests, rows_received, rows_inserted,
                rows_updated, rows_rejected, campaigns_failed, error
         FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT $1",
    )
    .bind(runs)
    .fetch_all(pool)
    .await?;
    let _ = writeln!(out, "\nlast runs:");
    for r in &recent {
        let started: DateTime<Utc> = r.get("started_at");
        let seconds = r
            .get::<Option<DateTime<Utc>>, _>("finished_at")
            .map_or("-".to_string(), |f| {
                format!("{:.1}s", (f - started).num_milliseconds() as f64 / 1000.0)
            });
        let _ = writeln!(
            out,
            "{} {} {:<9} {:>7} requests {:>8} rows read {:>7} new {:>7} changed {:>4} rejected {:>3} failed {}{}",
            started.format("%Y-%m-%d %H:%M:%SZ"),
            r.get::<uuid::Uuid, _>("run_id"),
            r.get::<String, _>("outcome"),
            r.get::<i64, _>("requests"),
            r.get::<i64, _>("rows_received"),
            r.get::<i64, _>("rows_inserted"),
            r.get::<i64, _>("rows_updated"),
            r.get::<i64, _>("rows_rejected"),
            r.get::<i32, _>("campaigns_failed"),
            seconds,
            r.get::<Option<String>, _>("error").map(|e| format!("  error: {e}")).unwrap_or_default()
        );
    }
    Ok(out)
}
