//! Rewriting the stored personal data under stricter settings: every row in batches that
//! commit how far they got, then the rows set aside, then the new settings.

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Rewrite, Settings};
use crate::db::Schema;
use crate::model::personal::{Door, Mode, Protection};
use crate::model::storable;

/// What a finished rewrite did.
#[derive(Debug)]
pub struct Rewritten {
    pub rows: i64,
    pub rejected: i64,
    pub seconds: f64,
}

/// A stored row as a rewrite reads it: its key, `user_data` and `extra`.
type Stored = (
    String,
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
);

/// How stored values are rewritten: the new mode over the keys not already under it.
fn rewriter(personal: &Protection, from: &Settings) -> Protection {
    let keys = match (from.mode(), personal.mode) {
        (Mode::Keep, _) | (Mode::Hash, Mode::Drop) => personal.keys.clone(),
        _ => personal
            .keys
            .iter()
            .filter(|k| !from.keys.contains(k))
            .cloned()
            .collect(),
    };
    personal.over(keys)
}

/// Rows rewritten per transaction: each commits its progress, so a run killed half-way loses
/// at most one batch of work, and a batch's locks are short.
const BATCH: i64 = 2000;

/// Rewrites every stored row under the run's settings, a batch per transaction with how far
/// it got, then the rows set aside, then records the new settings; stops early, resumable,
/// when `halt` is cancelled.
pub async fn rewrite(
    schema: &Schema,
    conn: &mut PgConnection,
    personal: &Protection,
    plan: Rewrite,
    run_id: Uuid,
    halt: &CancellationToken,
) -> anyhow::Result<Option<Rewritten>> {
    let clock = std::time::Instant::now();
    let values = rewriter(personal, &plan.from);
    let mut through = plan.through.clone();
    loop {
        if halt.is_cancelled() {
            return Ok(None);
        }
        let mut tx = conn.begin().await?;
        let last = rewrite_batch(schema, &mut tx, through, personal, &values).await?;
        tx.commit().await?;
        match last {
            Some(last) => through = Some(last),
            None => break,
        }
    }
    let mut tx = conn.begin().await?;
    let rejected = rewrite_set_aside(schema, &mut tx, &values).await?;
    let rows = record_rewrite(schema, &mut tx, &plan, run_id, rejected).await?;
    tx.commit().await?;
    Ok(Some(Rewritten {
        rows,
        rejected,
        seconds: clock.elapsed().as_secs_f64(),
    }))
}

/// Rewrites the next batch of rows after `through`, and records how far the rewrite got;
/// returns the last row's place, or None when no row is left.
async fn rewrite_batch(
    schema: &Schema,
    tx: &mut PgConnection,
    through: Option<(String, DateTime<Utc>)>,
    personal: &Protection,
    values: &Protection,
) -> sqlx::Result<Option<(String, DateTime<Utc>)>> {
    // Past the last batch, by the primary key's order, so each batch is an index range.
    let after = match through {
        Some(_) => "(campaign_display_id, attributed_at) > ($1, $2)",
        None => "$1::text IS NULL AND $2::timestamptz IS NULL",
    };
    let (last_campaign, last_at) = through.unzip();
    let bound: Option<(String, DateTime<Utc>)> = sqlx::query_as(&schema.sql(&format!(
        "SELECT campaign_display_id, attributed_at FROM linkrunner.attributed_users
         WHERE {after}
         ORDER BY campaign_display_id, attributed_at OFFSET $3 LIMIT 1"
    )))
    .bind(&last_campaign)
    .bind(last_at)
    .bind(BATCH - 1)
    .fetch_optional(&mut *tx)
    .await?;
    // Rows of one campaign and instant go together: a rewritten key moves a row within
    // them, never past where the next batch starts.
    let upto = match bound {
        Some(_) => "(campaign_display_id, attributed_at) <= ($3, $4)",
        None => "$3::text IS NULL AND $4::timestamptz IS NULL",
    };
    let rows: Vec<Stored> = sqlx::query_as(&schema.sql(&format!(
        "SELECT campaign_display_id, attributed_at, row_key, user_data::text, extra::text
         FROM linkrunner.attributed_users
         WHERE {after} AND {upto}
         ORDER BY campaign_display_id, attributed_at
         FOR UPDATE"
    )))
    .bind(&last_campaign)
    .bind(last_at)
    .bind(bound.as_ref().map(|b| &b.0))
    .bind(bound.as_ref().map(|b| b.1))
    .fetch_all(&mut *tx)
    .await?;
    let Some(last) = rows.last().map(|r| (r.0.clone(), r.1)) else {
        return Ok(None);
    };
    let mut changed = Changed::default();
    for (campaign, at, key, user_data, extra) in rows {
        let new_data = user_data.as_deref().and_then(|t| object(values, t));
        let new_extra = extra.as_deref().and_then(|t| object(values, t));
        let new_key = key
            .strip_prefix("h:")
            .and_then(|digest| personal.content_key(digest));
        if new_data.is_none() && new_extra.is_none() && new_key.is_none() {
            continue;
        }
        changed.push(campaign, at, key, new_key, new_data, new_extra);
    }
    let n = changed.write(schema, &mut *tx).await?;
    sqlx::query(&schema.sql(
        "UPDATE linkrunner.personal_data SET through_campaign = $1, through_at = $2,
             rows_rewritten = rows_rewritten + $3",
    ))
    .bind(&last.0)
    .bind(last.1)
    .bind(n)
    .execute(&mut *tx)
    .await?;
    Ok(Some(last))
}

/// Records the rewrite done: the schema's mode is the new one, and its history says so;
/// returns the rows rewritten.
async fn record_rewrite(
    schema: &Schema,
    tx: &mut PgConnection,
    plan: &Rewrite,
    run_id: Uuid,
    rejected: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(&schema.sql(
        "WITH done AS (
             UPDATE linkrunner.personal_data SET mode = to_mode, keys = to_keys,
                 key_check = to_key_check, recorded_at = now(), run_id = $1, to_mode = NULL,
                 to_keys = NULL, to_key_check = NULL, rewrite_started = NULL,
                 through_campaign = NULL, through_at = NULL
             RETURNING rows_rewritten)
         INSERT INTO linkrunner.personal_data_changes (run_id, from_mode, to_mode, from_keys,
             to_keys, rows_rewritten, rejected_rewritten, started_at)
         SELECT $1, $2, $3, $4, $5, rows_rewritten, $6, $7 FROM done
         RETURNING rows_rewritten",
    ))
    .bind(run_id)
    .bind(&plan.from.mode)
    .bind(&plan.to.mode)
    .bind(&plan.from.keys)
    .bind(&plan.to.keys)
    .bind(rejected)
    .bind(plan.started)
    .fetch_one(&mut *tx)
    .await
}

/// A stored JSON object rewritten; None when nothing in it changes. One that is not an
/// object holds nothing the door would have let through, so it is replaced.
fn object(values: &Protection, text: &str) -> Option<String> {
    if values.keys.is_empty() {
        return None;
    }
    match values.rewrite_object(text) {
        Ok(rewritten) => rewritten,
        Err(_) if text == "null" => None,
        Err(_) => Some(
            serde_json::json!({
                "withheld": format!("personal-data mode {}: not an object", values.mode.name())
            })
            .to_string(),
        ),
    }
}

/// The rows of a batch whose values or key change.
#[derive(Default)]
struct Changed {
    campaign: Vec<String>,
    at: Vec<DateTime<Utc>>,
    key: Vec<String>,
    new_key: Vec<Option<String>>,
    user_data: Vec<Option<String>>,
    extra: Vec<Option<String>>,
}

impl Changed {
    fn push(
        &mut self,
        campaign: String,
        at: DateTime<Utc>,
        key: String,
        new_key: Option<String>,
        user_data: Option<String>,
        extra: Option<String>,
    ) {
        self.campaign.push(campaign);
        self.at.push(at);
        self.key.push(key);
        self.new_key.push(new_key);
        self.user_data.push(user_data);
        self.extra.push(extra);
    }

    async fn write(self, schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<i64> {
        if self.campaign.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(&schema.sql(
            "UPDATE linkrunner.attributed_users a SET
                 row_key = COALESCE(u.new_key, a.row_key),
                 user_data = COALESCE(u.user_data::jsonb, a.user_data),
                 extra = COALESCE(u.extra::jsonb, a.extra)
             FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                         $6::text[]) AS u(c, t, k, new_key, user_data, extra)
             WHERE a.campaign_display_id = u.c AND a.attributed_at = u.t AND a.row_key = u.k",
        ))
        .bind(&self.campaign)
        .bind(&self.at)
        .bind(&self.key)
        .bind(&self.new_key)
        .bind(&self.user_data)
        .bind(&self.extra)
        .execute(conn)
        .await?;
        Ok(done.rows_affected() as i64)
    }
}

/// Rewrites the user rows set aside as the door would have let them in; rows that become
/// one are kept once.
async fn rewrite_set_aside(
    schema: &Schema,
    conn: &mut PgConnection,
    values: &Protection,
) -> sqlx::Result<i64> {
    if values.keys.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(String, String, String)> = sqlx::query_as(&schema.sql(
        "SELECT campaign_display_id, raw_sha256, raw_text FROM linkrunner.rejected_rows
         WHERE kind = 'attributed_user' ORDER BY first_rejected_at FOR UPDATE",
    ))
    .fetch_all(&mut *conn)
    .await?;
    let mut seen = HashSet::new();
    let (mut campaigns, mut hashes, mut texts, mut gone) = (vec![], vec![], vec![], vec![]);
    let mut readable: Vec<Option<String>> = vec![];
    let mut rewritten = Vec::new();
    for (campaign, hash, text) in rows {
        let new = match RawValue::from_string(text.clone()) {
            Ok(raw) => match values.apply(raw) {
                Door::Pass(_) => {
                    seen.insert((campaign, hash));
                    continue;
                }
                Door::Rewritten { item, .. } => item.get().to_owned(),
                Door::Withheld(digest) => digest,
            },
            // Text that is not JSON at all: kept only as the door keeps such an item.
            Err(_) => values.withheld(&text),
        };
        rewritten.push((campaign, hash, new));
    }
    for (campaign, hash, new) in rewritten {
        let new_hash = hex::encode(Sha256::digest(new.as_bytes()));
        if seen.insert((campaign.clone(), new_hash)) {
            campaigns.push(campaign);
            hashes.push(hash);
            readable.push(match storable::readable(&new, false) {
                Cow::Borrowed(_) => None,
                Cow::Owned(text) => Some(text),
            });
            texts.push(new);
        } else {
            gone.push((campaign, hash));
        }
    }
    for (campaign, hash) in &gone {
        sqlx::query(&schema.sql(
            "DELETE FROM linkrunner.rejected_rows WHERE campaign_display_id = $1
                 AND raw_sha256 = $2",
        ))
        .bind(campaign)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    }
    // Two steps, so that no row takes a hash another still holds.
    let sql = "UPDATE linkrunner.rejected_rows r SET raw_sha256 = 'rewriting:' || r.raw_sha256
         FROM UNNEST($1::text[], $2::text[]) AS u(c, h)
         WHERE r.campaign_display_id = u.c AND r.raw_sha256 = u.h";
    sqlx::query(&schema.sql(sql))
        .bind(&campaigns)
        .bind(&hashes)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query(&schema.sql(
        "UPDATE linkrunner.rejected_rows r SET raw_text = u.t,
             raw = linkrunner.try_jsonb(COALESCE(u.readable, u.t)),
             raw_sha256 = encode(sha256(convert_to(u.t, 'UTF8')), 'hex')
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c, h, t, readable)
         WHERE r.campaign_display_id = u.c AND r.raw_sha256 = 'rewriting:' || u.h",
    ))
    .bind(&campaigns)
    .bind(&hashes)
    .bind(&texts)
    .bind(&readable)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() as i64 + gone.len() as i64)
}
