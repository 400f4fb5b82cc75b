//! The sync's own state: the run ledger, checkpoints and scanned ranges.

use super::Schema;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use crate::model::figures::{shown, Figures, Shown, Value};
use crate::model::run::{Outcome, RunTotals};
use crate::model::window::Window;

/// Per campaign: `[covered_from, synced_until)` has been read with no gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub covered_from: DateTime<Utc>,
    pub synced_until: DateTime<Utc>,
    /// The list's `attributed_users` counter when the campaign was last read up to a run's end.
    pub counter_at_sync: Option<i64>,
    pub verified_at: Option<DateTime<Utc>>,
    /// The rows the counter was held against at that read.
    pub rows_at_sync: Option<i64>,
    /// From when the counter is trusted to track the rows; None while it is not.
    pub trusted_from: Option<DateTime<Utc>>,
}

impl Checkpoint {
    /// Whether the counter has been seen to agree with the rows, and is out of probation.
    pub fn trusted(&self, now: DateTime<Utc>) -> bool {
        self.counter_at_sync.is_some() && self.trusted_from.is_some_and(|t| t <= now)
    }
}

/// What a campaign read to the run's end is checked against: its counter is trusted while it
/// equals the rows attributed by the time the list was read.
#[derive(Clone, Copy, Debug)]
pub struct Verify {
    /// The list's `attributed_users` counter.
    pub counter: Option<i64>,
    /// When the list was read; rows attributed later need not be counted yet.
    pub listed_at: DateTime<Utc>,
    /// The campaign's rows as the job counted them without the database: `pagination.total`
    /// over its whole life when the stored history does not reach its creation, or the rows of
    /// a range read from its creation. None: the stored rows are counted.
    pub counted: Option<i64>,
    /// The campaign's creation, from which a range holds all its rows.
    pub created_at: Option<DateTime<Utc>>,
    /// How long a counter once found apart from the rows must agree before it is trusted again.
    pub probation: chrono::Duration,
}

impl Verify {
    /// With the rows of a range read from `start` as the count, when the range holds the
    /// campaign's whole life: one count fewer for the database.
    pub fn with_range(self, start: DateTime<Utc>, rows: impl FnOnce() -> u64) -> Verify {
        let whole = self.created_at.is_some_and(|c| start <= c);
        match self.counted {
            None if whole => Verify {
                counted: Some(rows() as i64),
                ..self
            },
            _ => self,
        }
    }
}

pub async fn checkpoints<'e>(
    schema: &Schema,
    db: impl PgExecutor<'e>,
) -> sqlx::Result<Vec<(String, Checkpoint)>> {
    let sql = schema.sql(
        "SELECT campaign_display_id, covered_from, synced_until, counter_at_sync, verified_at,
                trusted_from, rows_at_sync
         FROM linkrunner.sync_checkpoints",
    );
    let rows = sqlx::query(&sql).fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Checkpoint {
                    covered_from: r.get(1),
                    synced_until: r.get(2),
                    counter_at_sync: r.get(3),
                    verified_at: r.get(4),
                    trusted_from: r.get(5),
                    rows_at_sync: r.get(6),
                },
            )
        })
        .collect())
}

/// Notes that these campaigns were confirmed current by their unchanged counters.
pub async fn mark_checked(
    schema: &Schema,
    conn: &mut PgConnection,
    campaigns: &[String],
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "UPDATE linkrunner.sync_checkpoints SET checked_at = now()
         WHERE campaign_display_id = ANY($1)",
    ))
    .bind(campaigns)
    .execute(conn)
    .await?;
    Ok(())
}

/// Notes why this run read each campaign, or `skip`, on those with a checkpoint.
pub async fn record_reasons(
    schema: &Schema,
    conn: &mut PgConnection,
    reasons: &[(&str, &str)],
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "UPDATE linkrunner.sync_checkpoints k SET read_because = r.why
         FROM UNNEST($1::text[], $2::text[]) AS r(c, why)
         WHERE k.campaign_display_id = r.c",
    ))
    .bind(reasons.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(reasons.iter().map(|r| r.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// A range this run read completely, with what reading it did.
pub struct ScanRecord<'a> {
    pub campaign: &'a str,
    pub range: Window,
    /// Where this run's gap-free reading of the campaign began.
    pub run_from: DateTime<Utc>,
    pub requests: u64,
    pub rows_received: u64,
    pub inserted: u64,
    pub updated: u64,
}

/// Records ranges read completely (at most one per campaign) and extends each campaign's
/// checkpoint by its range when that joins what is already covered, in one statement; then marks
/// `verified` campaigns (read to the run's end) and judges their counters.
///
/// The checkpoint update only ever widens the interval, so a checkpoint never moves backwards.
pub async fn record_scans(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    scans: &[ScanRecord<'_>],
    verified: &[(&str, Verify)],
) -> sqlx::Result<()> {
    if !scans.is_empty() {
        record_ranges(schema, &mut *conn, run_id, scans).await?;
    }
    // A statement of its own: it must see the checkpoints and rows written before it.
    if !verified.is_empty() {
        record_verified(schema, conn, verified).await?;
    }
    Ok(())
}

/// Stores each campaign's counter beside the rows it should count. Agreement over rows keeps or
/// earns trust (at once for a counter never found apart from the rows, else after `probation`);
/// disagreement takes it away. Agreement at zero proves nothing: a counter that always reads 0
/// agrees with every empty campaign, so it earns no trust (and is no lie either). The rows
/// listed by then are the campaign's kept count less the few stored since, so the check reads
/// only those, whatever the campaign's history.
async fn record_verified(
    schema: &Schema,
    conn: &mut PgConnection,
    verified: &[(&str, Verify)],
) -> sqlx::Result<()> {
    let field =
        |f: fn(&Verify) -> Option<i64>| verified.iter().map(|v| f(&v.1)).collect::<Vec<_>>();
    sqlx::query(&schema.sql(
        "WITH v AS (
             SELECT v.*, COALESCE(v.upstream,
                 (SELECT COALESCE(sum(n.rows), 0)::int8 FROM linkrunner.campaign_row_counts n
                   WHERE n.campaign_display_id = v.c)
                 - (SELECT count(*) FROM linkrunner.attributed_users a
                     WHERE a.campaign_display_id = v.c AND a.attributed_at > v.listed)
                 + (SELECT count(*) FROM linkrunner.rejected_rows r
                     WHERE r.campaign_display_id = v.c AND r.kind = 'attributed_user')
                 + (SELECT count(*) FROM linkrunner.forgotten_rows f
                     WHERE f.campaign_display_id = v.c AND f.attributed_at <= v.listed)) AS rows
             FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::int8[], $5::interval[])
                 AS v(c, n, listed, upstream, probation)
         )
         UPDATE linkrunner.sync_checkpoints k
         SET counter_at_sync = v.n, rows_at_sync = v.rows, verified_at = now(),
             checked_at = now(),
             counter_lied_at = CASE WHEN v.n IS DISTINCT FROM v.rows THEN now()
                                    ELSE k.counter_lied_at END,
             trusted_from = CASE WHEN v.n IS DISTINCT FROM v.rows THEN NULL
                                 WHEN v.rows = 0 THEN NULL
                                 WHEN k.trusted_from IS NOT NULL THEN k.trusted_from
                                 WHEN k.counter_lied_at IS NULL THEN now()
                                 ELSE GREATEST(now(), k.counter_lied_at + v.probation) END
         FROM v
         WHERE k.campaign_display_id = v.c",
    ))
    .bind(verified.iter().map(|v| v.0).collect::<Vec<_>>())
    .bind(field(|v| v.counter))
    .bind(verified.iter().map(|v| v.1.listed_at).collect::<Vec<_>>())
    .bind(field(|v| v.counted))
    .bind(verified.iter().map(|v| v.1.probation).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records committed ranges and moves their campaigns' checkpoints on: one statement, long
/// only for its SQL.
async fn record_ranges(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    scans: &[ScanRecord<'_>],
) -> sqlx::Result<()> {
    let count = |f: fn(&ScanRecord) -> u64| scans.iter().map(|s| f(s) as i32).collect::<Vec<_>>();
    // One sync_windows row per start; a longer or newer reading of the same start replaces a
    // shorter one. Verified campaigns had their ranges committed by earlier statements.
    sqlx::query(&schema.sql(
        "WITH scans AS (
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[],
                 $4::timestamptz[], $6::int4[], $7::int4[], $8::int4[], $9::int4[])
                 AS t(c, s, e, f, r, n, i, u)
         ), windows AS (
             INSERT INTO linkrunner.sync_windows AS w (campaign_display_id, window_start,
                 window_end, completed_at, run_id, requests, rows_received, rows_inserted,
                 rows_updated)
             SELECT c, s, e, now(), $5, r, n, i, u FROM scans
             ON CONFLICT (campaign_display_id, window_start) DO UPDATE SET
                 window_end = EXCLUDED.window_end, completed_at = EXCLUDED.completed_at,
                 run_id = EXCLUDED.run_id, requests = EXCLUDED.requests,
                 rows_received = EXCLUDED.rows_received, rows_inserted = EXCLUDED.rows_inserted,
                 rows_updated = EXCLUDED.rows_updated
             WHERE EXCLUDED.window_end >= w.window_end
         ), checkpoints AS (
             INSERT INTO linkrunner.sync_checkpoints AS k
                 (campaign_display_id, covered_from, synced_until, last_run_id)
             SELECT c, f, e, $5 FROM scans
             ON CONFLICT (campaign_display_id) DO UPDATE SET
                 covered_from = LEAST(k.covered_from, EXCLUDED.covered_from),
                 synced_until = GREATEST(k.synced_until, EXCLUDED.synced_until),
                 updated_at = now(), last_run_id = EXCLUDED.last_run_id
             WHERE EXCLUDED.covered_from <= k.synced_until
               AND EXCLUDED.synced_until >= k.covered_from
               AND (EXCLUDED.covered_from < k.covered_from
                    OR EXCLUDED.synced_until > k.synced_until)
         )
         -- Postgres runs every data-modifying WITH to completion, read or not.
         SELECT 1",
    ))
    .bind(scans.iter().map(|s| s.campaign).collect::<Vec<_>>())
    .bind(scans.iter().map(|s| s.range.start).collect::<Vec<_>>())
    .bind(scans.iter().map(|s| s.range.end).collect::<Vec<_>>())
    .bind(scans.iter().map(|s| s.run_from).collect::<Vec<_>>())
    .bind(run_id)
    .bind(count(|s| s.requests))
    .bind(count(|s| s.rows_received))
    .bind(count(|s| s.inserted))
    .bind(count(|s| s.updated))
    .execute(conn)
    .await?;
    Ok(())
}

/// Ranges of `campaign` read at least `settle` after their end, overlapping `[from, to)`.
pub async fn settled_ranges(
    schema: &Schema,
    conn: &mut PgConnection,
    campaign: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    settle: chrono::Duration,
) -> sqlx::Result<Vec<Window>> {
    let rows = sqlx::query(&schema.sql(
        "SELECT window_start, window_end FROM linkrunner.sync_windows
         WHERE campaign_display_id = $1 AND window_end > $2 AND window_start < $3
           AND completed_at >= window_end + $4
         ORDER BY window_start",
    ))
    .bind(campaign)
    .bind(from)
    .bind(to)
    .bind(settle)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Window {
            start: r.get(0),
            end: r.get(1),
        })
        .collect())
}

/// Opens a run in the ledger; runs left 'running' by a process that died become 'abandoned'.
pub async fn start_run(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    settings: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "UPDATE linkrunner.sync_runs SET outcome = 'abandoned'
         WHERE outcome = 'running' AND run_id <> $1",
    ))
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&schema.sql("INSERT INTO linkrunner.sync_runs (run_id, settings) VALUES ($1, $2)"))
        .bind(run_id)
        .bind(settings)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the run's end, its error and its figures, but those a stream records itself.
pub async fn finish_run(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    outcome: Outcome,
    totals: &RunTotals,
    error: Option<&str>,
) -> sqlx::Result<()> {
    // The run's row-count deltas, folded so a campaign's count stays one row to read.
    sqlx::query(&schema.sql("SELECT linkrunner.compact_row_counts()"))
        .execute(&mut *conn)
        .await?;
    let figures: Vec<Shown> = totals
        .figures()
        .into_iter()
        .filter(|f| !f.recorded_by_stream)
        .collect();
    let sql = format!(
        "UPDATE linkrunner.sync_runs SET finished_at = now(), outcome = $2, error = $3, {}
         WHERE run_id = $1",
        figures_set(&figures, 4)
    );
    let sql = schema.sql(&sql);
    let query = sqlx::query(&sql)
        .bind(run_id)
        .bind(outcome.as_str())
        // Error texts quote what servers sent: masked and escaped, a NUL would fail the update.
        .bind(error.map(|e| crate::output::secrets::clean(e, 2000)));
    bind_figures(query, figures).execute(conn).await?;
    Ok(())
}

/// Records a stream's figures in the run's ledger row.
pub async fn record_figures<T: Figures>(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    totals: &T,
) -> sqlx::Result<()> {
    let figures: Vec<Shown> = shown(totals).collect();
    let sql = format!(
        "UPDATE linkrunner.sync_runs SET {} WHERE run_id = $1",
        figures_set(&figures, 2)
    );
    let sql = schema.sql(&sql);
    let query = sqlx::query(&sql).bind(run_id);
    bind_figures(query, figures).execute(conn).await?;
    Ok(())
}

/// `a = $n, b = $n+1, …` over `figures`, from `$first`.
fn figures_set(figures: &[Shown], first: usize) -> String {
    let set: Vec<String> = figures
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{} = ${}", f.name, first + i))
        .collect();
    set.join(", ")
}

fn bind_figures(
    mut query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    figures: Vec<Shown>,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for f in figures {
        query = match f.value {
            Value::Count(n) => query.bind(n as i64),
            // Why a stream stopped quotes what servers sent: masked and escaped.
            Value::Text(t) => query.bind(t.map(|t| crate::output::secrets::clean(&t, 2000))),
        };
    }
    query
}

pub async fn schema_exists(schema: &Schema, db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    let table = schema.table("sync_checkpoints");
    table_exists(db, &table).await
}

/// Whether `table` (schema-qualified) exists: a dry run migrates nothing.
pub async fn table_exists(db: impl PgExecutor<'_>, table: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_range_from_the_campaigns_creation_is_its_count() {
        let created = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let verify = Verify {
            counter: Some(7),
            listed_at: created + chrono::Duration::days(30),
            counted: None,
            created_at: Some(created),
            probation: chrono::Duration::hours(6),
        };
        let midnight = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(verify.with_range(midnight, || 7).counted, Some(7));
        // A range starting after the creation holds part of the rows: the database counts.
        let later = created + chrono::Duration::days(1);
        assert_eq!(verify.with_range(later, || 7).counted, None);
        // A whole-life total asked for already stands.
        let asked = Verify {
            counted: Some(9),
            ..verify
        };
        assert_eq!(asked.with_range(midnight, || 7).counted, Some(9));
        let unknown = Verify {
            created_at: None,
            ..verify
        };
        assert_eq!(unknown.with_range(midnight, || 7).counted, None);
    }
}
