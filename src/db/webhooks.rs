//! Webhook events: stored once each, a redelivery counted; deliveries that are no event kept
//! aside with their reason.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::db::Schema;
use crate::model::personal::Identifier;
use crate::model::webhook::{Event, Unreadable};

/// What a batch of deliveries came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Events new to the table.
    pub new: u64,
    /// Deliveries of events already stored (or twice in the batch).
    pub again: u64,
    /// Events of people `forget` erased, not stored.
    pub suppressed: u64,
    /// Deliveries kept aside as unreadable.
    pub unreadable: u64,
}

/// An unreadable delivery: why, the body as the door keeps it, and when it came.
pub type Rejected<'a> = (&'a Unreadable, Option<&'a [u8]>, Option<DateTime<Utc>>);

/// A batch of deliveries to store. `at` is when a delivery was received, for those drained from
/// the spool (by the receiver's clock); the others are received at the database's `now()`.
#[derive(Default)]
pub struct Deliveries<'a> {
    pub events: Vec<(&'a Event, Option<DateTime<Utc>>)>,
    pub unreadable: Vec<Rejected<'a>>,
    /// The spool segment they come from and its records stored with them.
    pub drained: Option<(&'a str, i64)>,
}

/// How far a spool segment was drained: its records already stored.
pub async fn drained(schema: &Schema, conn: &mut PgConnection, segment: &str) -> sqlx::Result<i64> {
    let records: Option<i64> = sqlx::query_scalar(
        &schema.sql("SELECT records FROM linkrunner.webhook_spool_drained WHERE segment = $1"),
    )
    .bind(segment)
    .fetch_optional(conn)
    .await?;
    Ok(records.unwrap_or(0))
}

/// Forgets a spool segment whose file is gone.
pub async fn forget_segment(
    schema: &Schema,
    conn: &mut PgConnection,
    segment: &str,
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql("DELETE FROM linkrunner.webhook_spool_drained WHERE segment = $1"))
        .bind(segment)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a batch of deliveries in one transaction: events by their key, unreadable bodies by
/// their digest, each counted once more when it is there already. A forgotten person's events
/// are dropped. A new signup marks its campaign due for the next run.
pub async fn store(
    schema: &Schema,
    conn: &mut PgConnection,
    deliveries: &Deliveries<'_>,
) -> sqlx::Result<Stored> {
    let events: Vec<&Event> = deliveries.events.iter().map(|(e, _)| *e).collect();
    let mut tx = conn.begin().await?;
    let suppressed = suppressed_among(schema, &mut tx, &events).await?;
    let mut stored = Stored::default();
    let batch = distinct(&deliveries.events, &suppressed, &mut stored);
    if !batch.is_empty() {
        stored.new = insert_events(schema, &mut tx, &batch).await?;
        stored.again = (events.len() as u64 - stored.suppressed) - stored.new;
    }
    for rejected in &deliveries.unreadable {
        insert_rejected(schema, &mut tx, rejected).await?;
        stored.unreadable += 1;
    }
    if let Some((segment, records)) = deliveries.drained {
        mark_drained(schema, &mut tx, segment, records).await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// An event of a batch, how many times the batch delivers it, and when it first came.
type Distinct<'a> = (&'a Event, i32, Option<DateTime<Utc>>);

/// The batch's events one per key (a statement cannot touch a row twice), a forgotten person's
/// left out and counted.
fn distinct<'a>(
    events: &[(&'a Event, Option<DateTime<Utc>>)],
    suppressed: &HashSet<(Identifier, String)>,
    stored: &mut Stored,
) -> Vec<Distinct<'a>> {
    let mut batch: Vec<Distinct<'a>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (event, at) in events {
        if event
            .identities
            .iter()
            .any(|(kind, digest)| suppressed.contains(&(*kind, digest.clone())))
        {
            stored.suppressed += 1;
            continue;
        }
        match seen.get(event.key.as_str()) {
            Some(&i) => {
                batch[i].1 += 1;
                batch[i].2 = match (batch[i].2, *at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => {
                seen.insert(&event.key, batch.len());
                batch.push((event, 1, *at));
            }
        }
    }
    batch
}

/// Inserts the events, or counts their deliveries where they are stored; the new ones.
async fn insert_events(
    schema: &Schema,
    conn: &mut PgConnection,
    batch: &[Distinct<'_>],
) -> sqlx::Result<u64> {
    let col = |f: fn(&Event) -> Option<String>| -> Vec<Option<String>> {
        batch.iter().map(|(e, ..)| f(e)).collect()
    };
    let time = |f: fn(&Event) -> Option<DateTime<Utc>>| -> Vec<_> {
        batch.iter().map(|(e, ..)| f(e)).collect::<Vec<_>>()
    };
    let new: i64 = sqlx::query_scalar(&schema.sql(
        "WITH incoming AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                 $10::timestamptz[], $11::text[], $12::text[], $13::text[], $14::text[],
                 $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
                 $21::text[], $22::int4[], $23::timestamptz[])
             AS i(event_key, event_type, user_id, campaign_id, campaign_name, network_name,
                 ad_channel, attributed_on, installed_at, store_click_at, link, app_version,
                 gaid, idfa, name, phone, email, additional_data, meta_campaign_details,
                 google_campaign_details, body, deliveries, received_at)
         ), written AS (
             INSERT INTO linkrunner.webhook_events AS w (event_key, event_type, user_id,
                 campaign_id, campaign_name, network_name, ad_channel, attributed_on,
                 installed_at, store_click_at, link, app_version, gaid, idfa, name, phone,
                 email, additional_data, meta_campaign_details, google_campaign_details,
                 body, deliveries, first_received_at, last_received_at)
             SELECT event_key, event_type, user_id, campaign_id, campaign_name, network_name,
                 ad_channel, attributed_on, installed_at, store_click_at, link, app_version,
                 gaid, idfa, name, phone, email, additional_data::jsonb,
                 meta_campaign_details::jsonb, google_campaign_details::jsonb, body,
                 deliveries, COALESCE(received_at, now()), COALESCE(received_at, now())
             FROM incoming
             ON CONFLICT (event_key) DO UPDATE
                 SET deliveries = w.deliveries + EXCLUDED.deliveries,
                     first_received_at = LEAST(w.first_received_at, EXCLUDED.first_received_at),
                     last_received_at = GREATEST(w.last_received_at, EXCLUDED.last_received_at)
             RETURNING (xmax = 0) AS inserted, event_type, campaign_id, first_received_at
         ), due AS (
             -- Marked since the first such event: a spooled one may be older than now().
             INSERT INTO linkrunner.webhook_due AS d (campaign_display_id, since)
             SELECT campaign_id, min(first_received_at) FROM written
             WHERE inserted AND event_type = 'signup' AND campaign_id IS NOT NULL
             GROUP BY campaign_id
             ON CONFLICT (campaign_display_id) DO UPDATE
                 SET since = LEAST(d.since, EXCLUDED.since)
         )
         SELECT count(*) FILTER (WHERE inserted) FROM written",
    ))
    .bind(col(|e| Some(e.key.clone())))
    .bind(col(|e| Some(e.event_type.clone())))
    .bind(col(|e| e.user_id.clone()))
    .bind(col(|e| e.campaign_id.clone()))
    .bind(col(|e| e.campaign_name.clone()))
    .bind(col(|e| e.network_name.clone()))
    .bind(col(|e| e.ad_channel.clone()))
    .bind(time(|e| e.attributed_on))
    .bind(time(|e| e.installed_at))
    .bind(time(|e| e.store_click_at))
    .bind(col(|e| e.link.clone()))
    .bind(col(|e| e.app_version.clone()))
    .bind(col(|e| e.gaid.clone()))
    .bind(col(|e| e.idfa.clone()))
    .bind(col(|e| e.name.clone()))
    .bind(col(|e| e.phone.clone()))
    .bind(col(|e| e.email.clone()))
    .bind(col(|e| e.additional_data.clone()))
    .bind(col(|e| e.meta_campaign_details.clone()))
    .bind(col(|e| e.google_campaign_details.clone()))
    .bind(col(|e| Some(e.body.clone())))
    .bind(batch.iter().map(|(_, n, _)| *n).collect::<Vec<i32>>())
    .bind(batch.iter().map(|(.., at)| *at).collect::<Vec<_>>())
    .fetch_one(conn)
    .await?;
    Ok(new as u64)
}

/// Keeps an unreadable delivery aside, or counts it where it is kept.
async fn insert_rejected(
    schema: &Schema,
    conn: &mut PgConnection,
    (why, body, at): &Rejected<'_>,
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.webhook_rejected AS r (body_sha256, reason, body,
             first_received_at, last_received_at)
         VALUES ($1, $2, $3, COALESCE($4, now()), COALESCE($4, now()))
         ON CONFLICT (body_sha256) DO UPDATE
             SET deliveries = r.deliveries + 1,
                 first_received_at = LEAST(r.first_received_at, EXCLUDED.first_received_at),
                 last_received_at = GREATEST(r.last_received_at, EXCLUDED.last_received_at)",
    ))
    .bind(&why.digest)
    .bind(&why.reason)
    .bind(body)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records how far a spool segment is stored, in the transaction that stores it.
async fn mark_drained(
    schema: &Schema,
    conn: &mut PgConnection,
    segment: &str,
    records: i64,
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.webhook_spool_drained (segment, records) VALUES ($1, $2)
         ON CONFLICT (segment) DO UPDATE SET records = EXCLUDED.records, drained_at = now()",
    ))
    .bind(segment)
    .bind(records)
    .execute(conn)
    .await?;
    Ok(())
}

/// The entries of the suppression list the events' people match.
async fn suppressed_among(
    schema: &Schema,
    conn: &mut PgConnection,
    events: &[&Event],
) -> sqlx::Result<HashSet<(Identifier, String)>> {
    let (kinds, digests): (Vec<&str>, Vec<&str>) = events
        .iter()
        .flat_map(|e| e.identities.iter())
        .map(|(kind, digest)| (kind.name(), digest.as_str()))
        .unzip();
    if kinds.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<(String, String)> = sqlx::query_as(&schema.sql(
        "SELECT s.kind, s.digest FROM linkrunner.suppressed s
         JOIN UNNEST($1::text[], $2::text[]) AS p(kind, digest)
           ON s.kind = p.kind AND s.digest = p.digest",
    ))
    .bind(&kinds)
    .bind(&digests)
    .fetch_all(conn)
    .await?;
    Ok(found
        .into_iter()
        .filter_map(|(kind, digest)| Some((Identifier::parse(&kind)?, digest)))
        .collect())
}

/// The campaigns a signup event marked due.
pub async fn due(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(&schema.sql("SELECT campaign_display_id FROM linkrunner.webhook_due"))
        .fetch_all(conn)
        .await
}

/// Clears the marks of `campaigns`, read to the run's end after `read_from` (when the run's
/// list was read), once every signup event of theirs since the mark has its user stored; a
/// mark older than `patience` goes anyway, its events left for reconciliation to report.
pub async fn clear_due(
    schema: &Schema,
    conn: &mut PgConnection,
    campaigns: &[String],
    read_from: chrono::DateTime<chrono::Utc>,
    patience: chrono::Duration,
) -> sqlx::Result<u64> {
    let cleared = sqlx::query(&schema.sql(
        "DELETE FROM linkrunner.webhook_due d
         WHERE d.campaign_display_id = ANY($1) AND d.since <= $2
           AND (d.since < $2 - $3::interval OR NOT EXISTS (
               SELECT FROM linkrunner.webhook_events e
               WHERE e.campaign_id = d.campaign_display_id AND e.event_type = 'signup'
                 AND e.first_received_at >= d.since AND e.user_id IS NOT NULL
                 AND NOT EXISTS (
                     SELECT FROM linkrunner.attributed_users u
                     WHERE u.user_id = e.user_id
                       AND u.campaign_display_id = e.campaign_id)))",
    ))
    .bind(campaigns)
    .bind(read_from)
    .bind(format!("{} seconds", patience.num_seconds()))
    .execute(conn)
    .await?;
    Ok(cleared.rows_affected())
}
