//! Bulk writes of attributed users.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use serde_json::Value;

use crate::db::rows::{write_wire_time, Rejected, UserRow};

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
    conn: &mut PgConnection,
    rows: &[&UserRow],
) -> sqlx::Result<HashMap<String, WriteCounts>> {
    let mut counts: HashMap<String, WriteCounts> = HashMap::new();
    if rows.is_empty() {
        return Ok(counts);
    }
    let text = |i: usize| rows.iter().map(|r| r.texts[i].clone()).collect::<Vec<_>>();
    let time = |i: usize| rows.iter().map(|r| r.times[i]).collect::<Vec<_>>();
    let results = sqlx::query(
        "INSERT INTO linkrunner.attributed_users AS a (campaign_display_id, attributed_at, row_key,
             user_id, ad_channel, campaign_name, link, meta_ad_id, ad_creative_id, ad_creative_name,
             ad_set_id, ad_set_name, publisher_platform, platform_position, installed_at,
             store_click_at, user_data, extra)
         SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16,
             c17::jsonb, c18
         FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[], $17::text[],
             $18::jsonb[])
             AS t(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18)
         ON CONFLICT (campaign_display_id, attributed_at, row_key) DO UPDATE SET
             user_id = EXCLUDED.user_id, ad_channel = EXCLUDED.ad_channel,
             campaign_name = EXCLUDED.campaign_name, link = EXCLUDED.link,
             meta_ad_id = EXCLUDED.meta_ad_id, ad_creative_id = EXCLUDED.ad_creative_id,
             ad_creative_name = EXCLUDED.ad_creative_name, ad_set_id = EXCLUDED.ad_set_id,
             ad_set_name = EXCLUDED.ad_set_name, publisher_platform = EXCLUDED.publisher_platform,
             platform_position = EXCLUDED.platform_position, installed_at = EXCLUDED.installed_at,
             store_click_at = EXCLUDED.store_click_at, user_data = EXCLUDED.user_data,
             extra = EXCLUDED.extra, last_synced_at = now()
         WHERE (a.user_id, a.ad_channel, a.campaign_name, a.link, a.meta_ad_id, a.ad_creative_id,
                a.ad_creative_name, a.ad_set_id, a.ad_set_name, a.publisher_platform,
                a.platform_position, a.installed_at, a.store_click_at, a.user_data, a.extra)
             IS DISTINCT FROM
               (EXCLUDED.user_id, EXCLUDED.ad_channel, EXCLUDED.campaign_name, EXCLUDED.link,
                EXCLUDED.meta_ad_id, EXCLUDED.ad_creative_id, EXCLUDED.ad_creative_name,
                EXCLUDED.ad_set_id, EXCLUDED.ad_set_name, EXCLUDED.publisher_platform,
                EXCLUDED.platform_position, EXCLUDED.installed_at, EXCLUDED.store_click_at,
                EXCLUDED.user_data, EXCLUDED.extra)
         RETURNING campaign_display_id, (xmax = 0) AS inserted",
    )
    .bind(
        rows.iter()
            .map(|r| r.campaign_display_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.attributed_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.row_key.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>())
    .bind(text(0))
    .bind(text(1))
    .bind(text(2))
    .bind(text(3))
    .bind(text(4))
    .bind(text(5))
    .bind(text(6))
    .bind(text(7))
    .bind(text(8))
    .bind(text(9))
    .bind(time(0))
    .bind(time(1))
    .bind(rows.iter().map(|r| r.user_data.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.extra.clone()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    for row in results {
        let entry = counts.entry(row.get(0)).or_default();
        if row.get::<bool, _>(1) {
            entry.inserted += 1;
        } else {
            entry.updated += 1;
        }
    }
    Ok(counts)
}

/// Columns of `attributed_users` that a load writes, in the order of `UserRow`'s fields.
const COLUMNS: &str = "campaign_display_id, attributed_at, row_key, user_id, ad_channel, \
    campaign_name, link, meta_ad_id, ad_creative_id, ad_creative_name, ad_set_id, ad_set_name, \
    publisher_platform, platform_position, installed_at, store_click_at, user_data, extra";

/// A row's key within its campaign: `(attributed_at, row_key)`.
pub type Key = (DateTime<Utc>, String);

/// Keys already stored in any of `ranges`, (campaign, start, end) with both bounds included
/// like the API's, by campaign; campaigns with nothing stored are absent.
pub async fn existing_keys(
    conn: &mut PgConnection,
    ranges: &[(&str, DateTime<Utc>, DateTime<Utc>)],
) -> sqlx::Result<HashMap<String, HashSet<Key>>> {
    let rows = sqlx::query(
        "SELECT a.campaign_display_id, a.attributed_at, a.row_key
         FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[]) AS r(c, s, e)
         JOIN linkrunner.attributed_users a
           ON a.campaign_display_id = r.c AND a.attributed_at BETWEEN r.s AND r.e",
    )
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
pub async fn copy_new_users(conn: &mut PgConnection, rows: &[&UserRow]) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut buf = String::with_capacity(rows.len() * 1024);
    for row in rows {
        copy_text(&mut buf, Some(&row.campaign_display_id));
        copy_time(&mut buf, Some(row.attributed_at));
        copy_text(&mut buf, Some(&row.row_key));
        copy_text(&mut buf, row.user_id.as_deref());
        for text in &row.texts {
            copy_text(&mut buf, text.as_deref());
        }
        for time in row.times {
            copy_time(&mut buf, time);
        }
        copy_text(&mut buf, row.user_data.as_deref());
        copy_text(
            &mut buf,
            row.extra.as_ref().map(Value::to_string).as_deref(),
        );
        buf.pop();
        buf.push('\n');
    }
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY linkrunner.attributed_users ({COLUMNS}) FROM STDIN"
        ))
        .await?;
    copy.send(buf.into_bytes()).await?;
    copy.finish().await
}

/// One field of COPY's text format, escaped, then the column separator.
fn copy_text(buf: &mut String, value: Option<&str>) {
    let Some(mut text) = value else {
        buf.push_str("\\N\t");
        return;
    };
    // Whole runs without special characters are copied at once: JSON text has few.
    while let Some(at) = text.find(['\\', '\n', '\r', '\t']) {
        buf.push_str(&text[..at]);
        buf.push_str(match text.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => "\\t",
        });
        text = &text[at + 1..];
    }
    buf.push_str(text);
    buf.push('\t');
}

/// A timestamp field: it needs no escaping.
fn copy_time(buf: &mut String, value: Option<DateTime<Utc>>) {
    match value {
        Some(t) => write_wire_time(buf, t),
        None => buf.push_str("\\N"),
    }
    buf.push('\t');
}

/// Keeps rows that could not be understood, with the reason.
pub async fn insert_rejected(
    conn: &mut PgConnection,
    run_id: uuid::Uuid,
    campaign: &str,
    rejected: &[Rejected],
) -> sqlx::Result<()> {
    if rejected.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO linkrunner.rejected_rows (campaign_display_id, raw_sha256, reason, raw,
             last_run_id)
         SELECT DISTINCT ON (h) $2, h, reason, raw, $1
         FROM UNNEST($3::text[], $4::jsonb[]) AS t(reason, raw),
              LATERAL encode(sha256(convert_to(raw::text, 'UTF8')), 'hex') AS h
         ON CONFLICT (campaign_display_id, raw_sha256) DO UPDATE SET
             reason = EXCLUDED.reason, last_rejected_at = now(), last_run_id = EXCLUDED.last_run_id",
    )
    .bind(run_id)
    .bind(campaign)
    .bind(rejected.iter().map(|r| r.reason.clone()).collect::<Vec<_>>())
    .bind(rejected.iter().map(|r| r.raw.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let mut buf = String::new();
        copy_text(&mut buf, Some("a\\b\tc\nd\re"));
        copy_text(&mut buf, None);
        copy_text(&mut buf, Some(r#"{"k":"q\"x"}"#));
        assert_eq!(buf, "a\\\\b\\tc\\nd\\re\t\\N\t{\"k\":\"q\\\\\"x\"}\t");
    }
}
