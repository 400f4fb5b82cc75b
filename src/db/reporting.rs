//! The Reporting API's rows of a day: upserted into the table of their level, an unchanged row
//! left as it is, a changed one updated with when it changed; and how far each day is read,
//! committed with its rows.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::db::{self, writer, Schema};
use crate::model::report_days::DayState;
use crate::model::reporting::{Level, Reading, ReportRow, SetAside, METRICS};
use crate::model::storable;
use crate::model::user::Rejected;

/// Where a day stands once a page is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More pages to read; this one next, of a list of this many campaigns.
    Next { page: u32, total: Option<u64> },
    /// Read to its last page; settled when it was read after it left the lookback.
    Read { settled: bool },
}

/// How far each day of `view` is read.
pub async fn days(
    schema: &Schema,
    conn: &mut PgConnection,
    view: &str,
) -> sqlx::Result<BTreeMap<NaiveDate, DayState>> {
    type Row = (NaiveDate, i32, Option<DateTime<Utc>>, bool, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(&schema.sql(
        "SELECT day, next_page, read_at, settled, pass_total FROM linkrunner.reporting_days
         WHERE view = $1",
    ))
    .bind(view)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, next_page, read_at, settled, pass_total)| {
            let next_page = u32::try_from(next_page).unwrap_or(1).max(1);
            (
                day,
                DayState {
                    next_page,
                    read_at,
                    settled,
                    pass_total: pass_total.and_then(|t| u64::try_from(t).ok()),
                },
            )
        })
        .collect())
}

/// Stores a page's rows and the day's progress in one transaction, so a run stopped between
/// pages goes on at the next one and never skips one.
pub async fn commit_page(
    schema: &Schema,
    conn: &mut PgConnection,
    page: &DayRows<'_>,
    progress: Progress,
) -> sqlx::Result<Stored> {
    let mut tx = conn.begin().await?;
    let stored = store(schema, &mut tx, page).await?;
    let (next_page, read, settled, total) = match progress {
        Progress::Next { page, total } => (
            i32::try_from(page).unwrap_or(i32::MAX),
            false,
            false,
            total.and_then(|t| i64::try_from(t).ok()),
        ),
        Progress::Read { settled } => (1, true, settled, None),
    };
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.reporting_days AS d
             (day, view, project_timezone, next_page, read_at, settled, pass_total)
         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END, $6, $7)
         ON CONFLICT (day, view) DO UPDATE SET
             project_timezone = EXCLUDED.project_timezone,
             next_page = EXCLUDED.next_page,
             pass_total = EXCLUDED.pass_total,
             read_at = COALESCE(EXCLUDED.read_at, d.read_at),
             settled = CASE WHEN $5 THEN EXCLUDED.settled ELSE d.settled END,
             updated_at = now()",
    ))
    .bind(page.day)
    .bind(page.view)
    .bind(page.timezone)
    .bind(next_page)
    .bind(read)
    .bind(settled)
    .bind(total)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// A zone other than `timezone` that recorded days were read in, if any.
pub async fn other_timezone(
    schema: &Schema,
    conn: &mut PgConnection,
    timezone: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(&schema.sql(
        "SELECT project_timezone FROM linkrunner.reporting_days
         WHERE project_timezone <> $1 LIMIT 1",
    ))
    .bind(timezone)
    .fetch_optional(conn)
    .await
}

/// Marks every day read in a zone other than `timezone` unread, to be read again in it; the
/// rows stay, each with the zone it was read in, until the new reading replaces them.
pub async fn unread_other_timezones(
    schema: &Schema,
    conn: &mut PgConnection,
    timezone: &str,
) -> sqlx::Result<u64> {
    let done = sqlx::query(&schema.sql(
        "UPDATE linkrunner.reporting_days
         SET project_timezone = $1, next_page = 1, read_at = NULL, settled = false,
             pass_total = NULL, updated_at = now()
         WHERE project_timezone <> $1",
    ))
    .bind(timezone)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// How long to wait before the next request, so that it comes `period` after the last one any
/// run made: the API's limit is per key. The database's clock measures both ends.
pub async fn wait_before_request(
    schema: &Schema,
    conn: &mut PgConnection,
    period: std::time::Duration,
) -> sqlx::Result<std::time::Duration> {
    let seconds: Option<f64> = sqlx::query_scalar(&schema.sql(
        "SELECT EXTRACT(EPOCH FROM last_request_at + make_interval(secs => $1) - now())::float8
         FROM linkrunner.reporting_pace",
    ))
    .bind(period.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    Ok(std::time::Duration::from_secs_f64(
        seconds.unwrap_or(0.0).clamp(0.0, period.as_secs_f64()),
    ))
}

/// The database's clock, which writes every `read_at`.
pub async fn database_now(conn: &mut PgConnection) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT now()").fetch_one(conn).await
}

/// Records that a request goes out now.
pub async fn mark_request(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.reporting_pace (last_request_at) VALUES (now())
         ON CONFLICT (only_row) DO UPDATE SET last_request_at = now()",
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// A day's page of rows and what they were read under.
pub struct DayRows<'a> {
    pub day: NaiveDate,
    pub view: &'a str,
    pub timezone: &'a str,
    pub currency: Option<&'a str>,
    pub run_id: Uuid,
    pub rows: &'a [ReportRow],
    /// The page's items that are not stored, kept in `rejected_rows`.
    pub set_aside: &'a [SetAside],
}

/// Rows new to the warehouse, rows whose numbers changed, and items kept in `rejected_rows`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub inserted: u64,
    pub changed: u64,
    pub set_aside: u64,
}

/// Rows per statement: each binds a column of text per metric, and a session keeps a buffer
/// the size of the largest statement it sent.
const ROWS_PER_STATEMENT: usize = 1000;

/// A row Postgres refused with `message`, as `rejected_rows` keeps it.
fn refused_row<'r>(row: &'r ReportRow, message: &str) -> (&'r str, Rejected) {
    let reason = format!(
        "Postgres refused to store this {}: {message}",
        row.level.noun()
    );
    (
        row.display_id.as_str(),
        Rejected::new(reason, row.raw.clone()),
    )
}

/// The table of each level, and the columns of its ids.
const TABLES: [(&str, &[&str]); 4] = [
    ("reporting_daily", &[]),
    ("reporting_ad_sets", &["ad_set_id"]),
    ("reporting_ad_creatives", &["ad_set_id", "ad_creative_id"]),
    ("reporting_keywords", &["ad_set_id", "keyword_id"]),
];

fn table_of(level: &Level) -> usize {
    match level {
        Level::Campaign => 0,
        Level::AdSet { .. } => 1,
        Level::AdCreative { .. } => 2,
        Level::Keyword { .. } => 3,
    }
}

fn ids_of(level: &Level) -> Vec<&str> {
    match level {
        Level::Campaign => vec![],
        Level::AdSet { ad_set } => vec![ad_set],
        Level::AdCreative { ad_set, creative } => vec![ad_set, creative],
        Level::Keyword { ad_set, keyword } => vec![ad_set, keyword],
    }
}

/// Stores a page's rows of every level, a thousand at a time, and keeps its items set aside in
/// `rejected_rows`. A chunk Postgres refuses (a value past a type's range, say) is stored
/// again around the rows it refuses, which are kept there too.
pub async fn store(
    schema: &Schema,
    conn: &mut PgConnection,
    day: &DayRows<'_>,
) -> sqlx::Result<Stored> {
    let mut stored = Stored::default();
    let mut set_aside: Vec<(&str, Rejected)> = day
        .set_aside
        .iter()
        .map(|s| {
            let kept = Rejected::new(s.reason.clone(), s.raw.clone());
            (s.display_id.as_str(), kept)
        })
        .collect();
    for (i, (table, ids)) in TABLES.iter().enumerate() {
        let rows: Vec<&ReportRow> = day
            .rows
            .iter()
            .filter(|r| table_of(&r.level) == i)
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut trial = conn.begin().await?;
            let done = match upsert(schema, &mut trial, day, table, ids, chunk).await {
                Ok(done) => {
                    trial.commit().await?;
                    done
                }
                Err(e) if db::is_data_error(&e) => {
                    trial.rollback().await?;
                    let refused = db::refused(conn, chunk, |conn, row| {
                        Box::pin(async move {
                            upsert(schema, conn, day, table, ids, &[*row])
                                .await
                                .map(drop)
                        })
                    })
                    .await?;
                    let rest: Vec<&ReportRow> = chunk
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !refused.iter().any(|(r, _)| r == i))
                        .map(|(_, row)| *row)
                        .collect();
                    let done = upsert(schema, conn, day, table, ids, &rest).await?;
                    for (i, message) in refused {
                        tracing::warn!(
                            campaign = chunk[i].display_id,
                            reason = message,
                            "a Reporting API row cannot be stored: kept in rejected_rows"
                        );
                        set_aside.push(refused_row(chunk[i], &message));
                    }
                    done
                }
                Err(e) => return Err(e),
            };
            stored.inserted += done.inserted;
            stored.changed += done.changed;
        }
    }
    writer::insert_rejected_reporting(schema, conn, day.run_id, &set_aside).await?;
    stored.set_aside = set_aside.len() as u64;
    Ok(stored)
}

/// Rows new and rows changed by one statement.
struct Upserted {
    inserted: u64,
    changed: u64,
}

async fn upsert(
    schema: &Schema,
    conn: &mut PgConnection,
    day: &DayRows<'_>,
    table: &str,
    ids: &[&str],
    rows: &[&ReportRow],
) -> sqlx::Result<Upserted> {
    if rows.is_empty() {
        return Ok(Upserted {
            inserted: 0,
            changed: 0,
        });
    }
    let sql = upsert_sql(table, ids);
    let sql = schema.sql(&sql);
    let text = |s: &str| s.replace('\0', "\\u0000");
    let mut query = sqlx::query_scalar::<_, bool>(&sql)
        .bind(day.day)
        .bind(day.view)
        .bind(day.currency)
        .bind(day.timezone)
        .bind(day.run_id)
        .bind(rows.iter().map(|r| text(&r.display_id)).collect::<Vec<_>>());
    for i in 0..ids.len() {
        let column: Vec<String> = rows.iter().map(|r| text(ids_of(&r.level)[i])).collect();
        query = query.bind(column);
    }
    query = query.bind(
        rows.iter()
            .map(|r| r.name.as_deref().map(text))
            .collect::<Vec<_>>(),
    );
    for m in 0..METRICS.len() {
        let column: Vec<Option<&str>> = rows
            .iter()
            .map(|r| match &r.metrics[m] {
                Reading::Number(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        query = query.bind(column);
    }
    query = query
        .bind(
            rows.iter()
                .map(|r| r.unparsed.join(","))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| storable::readable(&r.raw, false).into_owned())
                .collect::<Vec<_>>(),
        );
    let inserted = query.fetch_all(conn).await?;
    let new = inserted.iter().filter(|i| **i).count() as u64;
    Ok(Upserted {
        inserted: new,
        changed: inserted.len() as u64 - new,
    })
}

/// The upsert of one level's rows: every column from an array, the numbers cast from their
/// decimal text, and a row whose values are all the same left untouched.
fn upsert_sql(table: &str, ids: &[&str]) -> String {
    let metrics: Vec<&str> = METRICS.iter().map(|m| m.column).collect();
    let mut arrays = vec!["display_id".to_owned()];
    arrays.extend(ids.iter().map(|c| c.to_string()));
    arrays.push("name".to_owned());
    arrays.extend(metrics.iter().map(|c| c.to_string()));
    arrays.extend(["unparsed".to_owned(), "raw".to_owned()]);
    let params: Vec<String> = (0..arrays.len())
        .map(|i| format!("${}::text[]", i + 6))
        .collect();
    let values: Vec<String> = arrays
        .iter()
        .map(|c| match c.as_str() {
            "unparsed" => "COALESCE(string_to_array(NULLIF(u.unparsed, ''), ','), '{}')".into(),
            "raw" => "linkrunner.try_jsonb(u.raw)".into(),
            c if metrics.contains(&c) => format!("u.{c}::numeric"),
            c => format!("u.{c}"),
        })
        .collect();
    let compared: Vec<&str> = ["name"]
        .into_iter()
        .chain(metrics.iter().copied())
        .chain(["currency", "project_timezone", "unparsed", "raw"])
        .collect();
    let keys = ["day", "display_id", "view"]
        .into_iter()
        .chain(ids.iter().copied())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO linkrunner.{table} AS r (day, view, currency, project_timezone, run_id, {cols})
         SELECT $1, $2, $3, $4, $5, {values}
         FROM UNNEST({params}) AS u({cols})
         ON CONFLICT ({keys}) DO UPDATE SET {set}, run_id = EXCLUDED.run_id, changed_at = now()
         WHERE ({old}) IS DISTINCT FROM ({new})
         RETURNING (xmax = 0)",
        cols = arrays.join(", "),
        values = values.join(", "),
        params = params.join(", "),
        set = compared
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        old = compared
            .iter()
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        new = compared
            .iter()
            .map(|c| format!("EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}
