//! The Reporting API's rows of a day: upserted into the table of their level, an unchanged row
//! left as it is, a changed one updated with when it changed.

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::Schema;
use crate::model::reporting::{Level, Reading, ReportRow, METRICS};
use crate::model::storable;

/// A day's page of rows and what they were read under.
pub struct DayRows<'a> {
    pub day: NaiveDate,
    pub view: &'a str,
    pub timezone: &'a str,
    pub currency: Option<&'a str>,
    pub run_id: Uuid,
    pub rows: &'a [ReportRow],
}

/// Rows new to the warehouse, and rows whose numbers changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub inserted: u64,
    pub changed: u64,
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

/// Stores a page's rows of every level.
pub async fn store(
    schema: &Schema,
    conn: &mut PgConnection,
    day: &DayRows<'_>,
) -> sqlx::Result<Stored> {
    let mut stored = Stored::default();
    for (i, (table, ids)) in TABLES.iter().enumerate() {
        let rows: Vec<&ReportRow> = day
            .rows
            .iter()
            .filter(|r| table_of(&r.level) == i)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let done = upsert(schema, conn, day, table, ids, &rows).await?;
        stored.inserted += done.inserted;
        stored.changed += done.changed;
    }
    Ok(stored)
}

async fn upsert(
    schema: &Schema,
    conn: &mut PgConnection,
    day: &DayRows<'_>,
    table: &str,
    ids: &[&str],
    rows: &[&ReportRow],
) -> sqlx::Result<Stored> {
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
                .map(|r| storable::readable(&r.raw.to_string(), false).into_owned())
                .collect::<Vec<_>>(),
        );
    let inserted = query.fetch_all(conn).await?;
    let new = inserted.iter().filter(|i| **i).count() as u64;
    Ok(Stored {
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
