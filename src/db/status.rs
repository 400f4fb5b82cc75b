//! Freshness per campaign and the last runs, as the `status` command reports them.

use std::collections::BTreeMap;

use super::Schema;
use crate::model::figures;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

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
    /// The counter's standing: `trusted`, `no evidence` (it has agreed only at zero),
    /// `disagrees`, `probation` (agrees again, trusted once the probation ends) or `unchecked`
    /// (never read to a run's end).
    pub counter: &'static str,
    /// Why the last run read the campaign, in the dry run's words; `skip` when it did not.
    pub read_because: Option<String>,
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
    pub error: Option<String>,
    /// Every figure of the ledger ([`figures`]), under its column's name.
    #[serde(flatten)]
    pub figures: BTreeMap<&'static str, Figure>,
}

/// A figure as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Figure {
    Count(i64),
    Text(Option<String>),
}

impl RunStatus {
    /// The count `name`; 0 for a figure that is not one.
    pub fn count(&self, name: &str) -> i64 {
        match self.figures.get(name) {
            Some(Figure::Count(n)) => *n,
            _ => 0,
        }
    }
}

/// How far the Reporting API is read, per view and the zone its days were read in.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ReportingStatus {
    pub view: String,
    pub project_timezone: String,
    pub first_day: chrono::NaiveDate,
    pub last_day: chrono::NaiveDate,
    /// Days read to their last page at least once.
    pub days_read: i64,
    /// Of them, settled: not read again.
    pub days_settled: i64,
    /// Days between the first and the last not read in full yet.
    pub days_missing: i64,
    /// Days whose pass stopped between pages, to go on at the next run.
    pub passes_under_way: i64,
    pub last_read_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub personal_data: Option<PersonalData>,
    pub reporting: Vec<ReportingStatus>,
    pub max_lag_seconds: i64,
    pub stale: usize,
    pub campaigns: Vec<CampaignStatus>,
    pub runs: Vec<RunStatus>,
}

/// What `--personal-data` the schema holds, a rewrite under way, and how many identifiers
/// `forget` suppresses.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct PersonalData {
    pub mode: String,
    pub keys: Vec<String>,
    pub rewriting_to: Option<String>,
    pub rows_rewritten: i64,
    pub suppressed: i64,
}

pub async fn load(
    schema: &Schema,
    pool: &PgPool,
    runs: i64,
    max_lag: Duration,
) -> sqlx::Result<Status> {
    let campaigns = campaigns(schema, pool, max_lag).await?;
    let personal_data = sqlx::query_as(&schema.sql(
        "SELECT mode, keys, to_mode AS rewriting_to, rows_rewritten,
                (SELECT count(*) FROM linkrunner.suppressed) AS suppressed
         FROM linkrunner.personal_data",
    ))
    .fetch_optional(pool)
    .await?;
    let reporting = sqlx::query_as(&schema.sql(
        "SELECT view, project_timezone, min(day) AS first_day, max(day) AS last_day,
                count(*) FILTER (WHERE read_at IS NOT NULL) AS days_read,
                count(*) FILTER (WHERE settled) AS days_settled,
                (max(day) - min(day) + 1) - count(*) FILTER (WHERE read_at IS NOT NULL)
                    AS days_missing,
                count(*) FILTER (WHERE next_page > 1) AS passes_under_way,
                max(read_at) AS last_read_at
         FROM linkrunner.reporting_days GROUP BY 1, 2 ORDER BY 1, 2",
    ))
    .fetch_all(pool)
    .await?;
    Ok(Status {
        personal_data,
        reporting,
        max_lag_seconds: max_lag.num_seconds(),
        stale: campaigns.iter().filter(|c| c.stale).count(),
        campaigns,
        runs: last_runs(schema, pool, runs).await?,
    })
}

async fn campaigns(
    schema: &Schema,
    pool: &PgPool,
    max_lag: Duration,
) -> sqlx::Result<Vec<CampaignStatus>> {
    let now = Utc::now();
    // data_freshness holds the rule for when a campaign counts as confirmed current.
    let rows = sqlx::query(&schema.sql(
        "SELECT f.campaign_display_id AS display_id, f.campaign_name AS name, f.active,
                f.deleted, f.covered_from, f.synced_until,
                GREATEST(f.confirmed_at, f.synced_until) AS checked_at, f.counter_trusted,
                k.counter_at_sync, k.rows_at_sync, k.read_because, k.verified_at,
                k.trusted_from > now() AS on_probation,
                (SELECT COALESCE(sum(n.rows), 0)::int8 FROM linkrunner.campaign_row_counts n
                  WHERE n.campaign_display_id = f.campaign_display_id) AS rows,
                f.rows_changed_at AS last_change
         FROM linkrunner.data_freshness f
         LEFT JOIN linkrunner.sync_checkpoints k
           ON k.campaign_display_id = f.campaign_display_id
         ORDER BY f.campaign_display_id",
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows
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
            let (trusted, counter_at_sync, rows_at_sync) = (
                r.get("counter_trusted"),
                r.get("counter_at_sync"),
                r.get("rows_at_sync"),
            );
            let verified = r.get::<Option<DateTime<Utc>>, _>("verified_at").is_some();
            let on_probation = r.get::<Option<bool>, _>("on_probation") == Some(true);
            CampaignStatus {
                display_id: r.get("display_id"),
                name: r.get("name"),
                state,
                rows: r.get("rows"),
                covered_from: r.get("covered_from"),
                synced_until: r.get("synced_until"),
                checked_at,
                counter_trusted: trusted,
                counter: standing(
                    verified,
                    trusted,
                    on_probation,
                    counter_at_sync,
                    rows_at_sync,
                ),
                read_because: r.get("read_because"),
                counter_at_sync,
                rows_at_sync,
                last_change: r.get("last_change"),
                behind_seconds: behind.map(|b| b.num_seconds()),
                stale: !deleted && behind.is_none_or(|b| b > max_lag),
            }
        })
        .collect())
}

/// The counter's standing, by the rule the run decides with (`sync::trust`).
fn standing(
    verified: bool,
    trusted: bool,
    on_probation: bool,
    counter: Option<i64>,
    rows: Option<i64>,
) -> &'static str {
    match (counter, rows) {
        _ if !verified => "unchecked",
        _ if trusted => "trusted",
        (Some(0), Some(0)) => "no evidence",
        _ if on_probation => "probation",
        _ => "disagrees",
    }
}

async fn last_runs(schema: &Schema, pool: &PgPool, runs: i64) -> sqlx::Result<Vec<RunStatus>> {
    let declared = figures::all();
    // Counts are int4 or int8 columns: read as int8 alike.
    let select: Vec<String> = declared
        .iter()
        .map(|f| match f.is_text() {
            true => f.name.to_string(),
            false => format!("{0}::int8 AS {0}", f.name),
        })
        .collect();
    let sql = format!(
        "SELECT run_id, started_at, finished_at, outcome, error, {}
         FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT $1",
        select.join(", ")
    );
    let rows = sqlx::query(&schema.sql(&sql))
        .bind(runs)
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            let mut figures = BTreeMap::new();
            for f in &declared {
                let value = match f.is_text() {
                    true => Figure::Text(r.try_get(f.name)?),
                    false => Figure::Count(r.try_get(f.name)?),
                };
                figures.insert(f.name, value);
            }
            Ok(RunStatus {
                run_id: r.try_get("run_id")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                outcome: r.try_get("outcome")?,
                error: r.try_get("error")?,
                figures,
            })
        })
        .collect()
}
