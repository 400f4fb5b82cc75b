//! Bulk writes of attributed users.

use super::Schema;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::db;
use crate::db::columns::{Column, ColumnType, ColumnValue, COLUMNS};
use crate::model::storable;
use crate::model::user::{Rejected, UserRow};
use crate::output::secrets;

/// What a batch did to the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub inserted: u64,
    pub updated: u64,
}

/// Upserts rows keyed on (campaign, attributed_at, row_key); rows whose content is unchanged
/// are not rewritten. `rows` must hold each key once.
/// Returns, per campaign, what the upsert did.
pub async fn upsert_users(
    schema: &Schema,
    conn: &mut PgConnection,
    rows: &[&UserRow],
) -> sqlx::Result<HashMap<String, WriteCounts>> {
    let mut counts: HashMap<String, WriteCounts> = HashMap::new();
    // A statement binds copies of its rows, and the connection's write buffer keeps the size of
    // the largest it sent: a few hundred rows at a time keep both small.
    for chunk in rows.chunks(UPSERT_CHUNK) {
        upsert_chunk(schema, conn, chunk, &mut counts).await?;
    }
    Ok(counts)
}

/// Rows upserted by one statement.
const UPSERT_CHUNK: usize = 500;

async fn upsert_chunk(
    schema: &Schema,
    conn: &mut PgConnection,
    rows: &[&UserRow],
    counts: &mut HashMap<String, WriteCounts>,
) -> sqlx::Result<()> {
    let upsert = schema.sql(&UPSERT);
    let mut query = sqlx::query(&upsert);
    for column in &COLUMNS {
        let values = rows.iter().map(|r| r.value(column.slot));
        query = match column.ty {
            ColumnType::Timestamptz => query.bind(
                values
                    .map(|v| match v {
                        ColumnValue::Time(t) => t,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            ColumnType::Text | ColumnType::Jsonb => query.bind(
                values
                    .map(|v| match v {
                        ColumnValue::Text(t) => t.map(str::to_owned),
                        ColumnValue::Json(j) => j.map(Cow::into_owned),
                        ColumnValue::Time(_) => None,
                    })
                    .collect::<Vec<_>>(),
            ),
        };
    }
    let results = query.fetch_all(&mut *conn).await?;
    for row in results {
        let entry = counts.entry(row.get(0)).or_default();
        if row.get::<bool, _>(1) {
            entry.inserted += 1;
        } else {
            entry.updated += 1;
        }
    }
    Ok(())
}

/// The upsert of a chunk of rows, each column bound as an array: a row whose content changed
/// is updated, one unchanged is left alone (and not counted).
static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let names = |f: &dyn Fn(&Column) -> String, only_values: bool| {
        COLUMNS
            .iter()
            .filter(|c| !(only_values && c.key))
            .map(f)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql_type = |c: &Column| match c.ty {
        ColumnType::Text | ColumnType::Jsonb => "text",
        ColumnType::Timestamptz => "timestamptz",
    };
    let arrays = (1..=COLUMNS.len())
        .zip(&COLUMNS)
        .map(|(i, c)| format!("${i}::{}[]", sql_type(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let cast = |c: &Column| match c.ty {
        ColumnType::Jsonb => format!("t.{0}::jsonb", c.name),
        _ => format!("t.{}", c.name),
    };
    format!(
        "INSERT INTO linkrunner.attributed_users AS a ({columns})
         SELECT {casts} FROM UNNEST({arrays}) AS t({columns})
         ON CONFLICT (campaign_display_id, attributed_at, row_key) DO UPDATE SET
             {set}, last_synced_at = now()
         WHERE ({old}) IS DISTINCT FROM ({new})
         RETURNING campaign_display_id, (xmax = 0) AS inserted",
        columns = names(&|c| c.name.to_owned(), false),
        casts = names(&cast, false),
        set = names(&|c| format!("{0} = EXCLUDED.{0}", c.name), true),
        old = names(&|c| format!("a.{}", c.name), true),
        new = names(&|c| format!("EXCLUDED.{}", c.name), true),
    )
});

/// Columns of `attributed_users` that a load writes, in the order of [`COLUMNS`].
static COLUMN_LIST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
});

/// A row's key within its campaign: `(attributed_at, row_key)`.
pub type Key = (DateTime<Utc>, String);

/// Keys already stored in any of `ranges`, (campaign, start, end) with both bounds included
/// like the API's, by campaign; campaigns with nothing stored are absent.
pub async fn existing_keys(
    schema: &Schema,
    conn: &mut PgConnection,
    ranges: &[(&str, DateTime<Utc>, DateTime<Utc>)],
) -> sqlx::Result<HashMap<String, HashSet<Key>>> {
    let rows = sqlx::query(&schema.sql(
        "SELECT a.campaign_display_id, a.attributed_at, a.row_key
         FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[]) AS r(c, s, e)
         JOIN linkrunner.attributed_users a
           ON a.campaign_display_id = r.c AND a.attributed_at BETWEEN r.s AND r.e",
    ))
    .bind(ranges.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.2).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut keys: HashMap<String, HashSet<Key>> = HashMap::new();
    for r in rows {
        keys.entry(r.get(0))
            .or_default()
            .insert((r.get(1), r.get(2)));
    }
    Ok(keys)
}

/// Loads rows known to be new with `COPY`, the fastest way into Postgres; returns the count.
/// The binary format spares both sides the escaping and parsing of text: fields go as
/// received, timestamps as integers.
pub async fn copy_new_users(
    schema: &Schema,
    conn: &mut PgConnection,
    rows: &[&UserRow],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut copy = conn
        .copy_in_raw(&schema.sql(&format!(
            "COPY linkrunner.attributed_users ({}) FROM STDIN (FORMAT binary)",
            *COLUMN_LIST
        )))
        .await?;
    // Sent a chunk at a time: the data is never all in memory, and the connection's write
    // buffer, which keeps its largest size, stays at a chunk.
    let mut buf = Vec::with_capacity(COPY_CHUNK + (8 << 10));
    buf.extend_from_slice(BINARY_HEADER);
    for row in rows {
        if let Err(e) = put_row(&mut buf, row) {
            copy.abort(e.to_string()).await?;
            return Err(e);
        }
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await?;
    copy.finish().await
}

/// Bytes of `COPY` data sent at once.
const COPY_CHUNK: usize = 64 << 10;

fn put_row(buf: &mut Vec<u8>, row: &UserRow) -> sqlx::Result<()> {
    buf.extend_from_slice(&(COLUMNS.len() as i16).to_be_bytes());
    for column in &COLUMNS {
        match row.value(column.slot) {
            ColumnValue::Text(t) => put_text(buf, t)?,
            ColumnValue::Time(t) => put_time(buf, t),
            ColumnValue::Json(j) => put_jsonb(buf, j.as_deref().map(str::as_bytes))?,
        }
    }
    Ok(())
}

/// The binary format's signature, flags and (empty) header extension.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds from the Unix epoch to Postgres's, 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn put_len(buf: &mut Vec<u8>, len: usize) -> sqlx::Result<()> {
    let len = i32::try_from(len).map_err(|_| sqlx::Error::Encode("a field over 2 GiB".into()))?;
    buf.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn put_null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

fn put_text(buf: &mut Vec<u8>, value: Option<&str>) -> sqlx::Result<()> {
    match value {
        Some(text) => {
            put_len(buf, text.len())?;
            buf.extend_from_slice(text.as_bytes());
        }
        None => put_null(buf),
    }
    Ok(())
}

/// A `timestamptz`: microseconds since 2000-01-01 UTC, as sqlx binds one.
fn put_time(buf: &mut Vec<u8>, value: Option<DateTime<Utc>>) {
    match value {
        Some(t) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&(t.timestamp_micros() - POSTGRES_EPOCH_MICROS).to_be_bytes());
        }
        None => put_null(buf),
    }
}

/// A `jsonb`: the format version, 1, then the JSON text.
fn put_jsonb(buf: &mut Vec<u8>, value: Option<&[u8]>) -> sqlx::Result<()> {
    match value {
        Some(json) => {
            put_len(buf, json.len() + 1)?;
            buf.push(1);
            buf.extend_from_slice(json);
        }
        None => put_null(buf),
    }
    Ok(())
}

/// The rows Postgres refuses to store, by index, with its message (see [`db::refused`]).
pub async fn refused(
    schema: &Schema,
    conn: &mut PgConnection,
    rows: &[&UserRow],
) -> sqlx::Result<Vec<(usize, String)>> {
    db::refused(conn, rows, |conn, row| {
        Box::pin(async move { upsert_users(schema, conn, &[*row]).await.map(drop) })
    })
    .await
}

/// Keeps rows of `campaign` that could not be read or stored, with the reason.
pub async fn insert_rejected(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: uuid::Uuid,
    campaign: &str,
    rejected: &[Rejected],
) -> sqlx::Result<()> {
    let (forgotten, rejected): (Vec<&Rejected>, Vec<&Rejected>) =
        rejected.iter().partition(|r| r.forgotten.is_some());
    let places: Vec<_> = forgotten
        .iter()
        .filter_map(|r| r.forgotten.as_ref())
        .filter_map(|f| f.attributed_at.map(|at| (at, f.key_digest.as_str())))
        .collect();
    if !places.is_empty() {
        let (at, digests): (Vec<_>, Vec<_>) = places.into_iter().unzip();
        sqlx::query(&schema.sql(
            "INSERT INTO linkrunner.forgotten_rows (campaign_display_id, attributed_at, key_digest)
             SELECT $1, * FROM UNNEST($2::timestamptz[], $3::text[]) ON CONFLICT DO NOTHING",
        ))
        .bind(campaign)
        .bind(at)
        .bind(digests)
        .execute(&mut *conn)
        .await?;
    }
    let items: Vec<_> = rejected.into_iter().map(|r| (campaign, r)).collect();
    insert_set_aside(schema, conn, run_id, "attributed_user", &items).await
}

/// Keeps items of the campaign list that cannot be stored, each under its `display_id` (or
/// `model::campaign::UNSTORABLE_ID`), with the reason.
pub async fn insert_rejected_campaigns(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: uuid::Uuid,
    campaigns: &[(&str, Rejected)],
) -> sqlx::Result<()> {
    let items: Vec<_> = campaigns.iter().map(|(id, r)| (*id, r)).collect();
    insert_set_aside(schema, conn, run_id, "campaign", &items).await
}

/// Keeps items of the Reporting API that cannot be stored, each under its campaign's
/// `display_id` (or `model::campaign::UNSTORABLE_ID`), with the reason.
pub async fn insert_rejected_reporting(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: uuid::Uuid,
    items: &[(&str, Rejected)],
) -> sqlx::Result<()> {
    let items: Vec<_> = items.iter().map(|(id, r)| (*id, r)).collect();
    insert_set_aside(schema, conn, run_id, "reporting", &items).await
}

/// Writes items set aside to `rejected_rows`, once per campaign and text: `raw_text` as
/// received, `raw` the same with each escape Postgres cannot store written as text, or NULL
/// where Postgres cannot read it even so (a number beyond `numeric`, say).
async fn insert_set_aside(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: uuid::Uuid,
    kind: &str,
    items: &[(&str, &Rejected)],
) -> sqlx::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    // What servers send is masked like every other text the job writes out: a key echoed
    // into a row must not land in the warehouse.
    let texts: Vec<String> = items.iter().map(|(_, r)| secrets::redact(&r.raw)).collect();
    let reasons: Vec<String> = items
        .iter()
        .map(|(_, r)| secrets::clean(&r.reason, 1000))
        .collect();
    // Only what differs from raw_text is sent again. A byte escaped by a recoded page that
    // pairs with a high surrogate escape before it stays a pair here: raw_text has it as sent.
    let readable = texts
        .iter()
        .map(|raw| match storable::readable(raw, false) {
            Cow::Borrowed(_) => None,
            Cow::Owned(text) => Some(text),
        });
    sqlx::query(
        &schema.sql("INSERT INTO linkrunner.rejected_rows (kind, campaign_display_id, raw_sha256, reason,
             raw_text, raw, last_run_id)
         SELECT DISTINCT ON (c, h) $1, c, h, reason, raw_text,
             linkrunner.try_jsonb(COALESCE(readable, raw_text)), $2
         FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[])
                  AS t(c, reason, raw_text, readable),
              LATERAL encode(sha256(convert_to(raw_text, 'UTF8')), 'hex') AS h
         ON CONFLICT (campaign_display_id, raw_sha256) DO UPDATE SET
             reason = EXCLUDED.reason, last_rejected_at = now(), last_run_id = EXCLUDED.last_run_id"),
    )
    .bind(kind)
    .bind(run_id)
    .bind(items.iter().map(|(c, _)| *c).collect::<Vec<_>>())
    .bind(&reasons)
    .bind(&texts)
    .bind(readable.collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn binary_fields_are_length_prefixed() {
        let mut buf = Vec::new();
        put_text(&mut buf, Some("a\tb")).unwrap();
        put_text(&mut buf, None).unwrap();
        put_jsonb(&mut buf, Some(b"{}")).unwrap();
        assert_eq!(buf, b"\0\0\0\x03a\tb\xff\xff\xff\xff\0\0\0\x03\x01{}");
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        let mut buf = Vec::new();
        put_time(
            &mut buf,
            Some(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 1).unwrap()),
        );
        put_time(
            &mut buf,
            Some(Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()),
        );
        let mut expected = 8i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&1_000_000i64.to_be_bytes());
        expected.extend_from_slice(&8i32.to_be_bytes());
        expected.extend_from_slice(&(-1_000_000i64).to_be_bytes());
        assert_eq!(buf, expected);
    }
}
