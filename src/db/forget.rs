//! Erasing a person (`linkrunner-sync forget`): every row of theirs in the schema goes, and
//! the suppression list keeps later runs from storing them again.

use sqlx::{Connection, PgConnection};

use crate::db::Schema;
use crate::personal::{Identifier, Protection, Suppression};

/// The people to erase, each value as given.
#[derive(Clone, Debug, Default)]
pub struct People {
    pub user_ids: Vec<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

/// What `forget` removed, per table, and what it added to the suppression list.
#[derive(Debug, Default)]
pub struct Erased {
    pub attributed_users: i64,
    pub rejected_rows: i64,
    pub attribution_results: i64,
    pub user_ids_found: i64,
    pub suppressed_new: i64,
    pub suppressed_total: i64,
}

/// The suppression list a run drops rows by.
pub async fn suppression(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<Suppression> {
    let rows: Vec<(String, String)> =
        sqlx::query_as(&schema.sql("SELECT kind, digest FROM linkrunner.suppressed"))
            .fetch_all(conn)
            .await?;
    let kinds = [Identifier::UserId, Identifier::Email, Identifier::Phone];
    Ok(Suppression::new(rows.into_iter().filter_map(
        |(kind, digest)| {
            let kind = kinds.into_iter().find(|k| k.name() == kind)?;
            Some((kind, digest))
        },
    )))
}

/// Deletes every row of `people` in one transaction, and records them in the suppression
/// list. `hashes` finds their emails and phones where the schema stores them hashed.
pub async fn forget(
    schema: &Schema,
    conn: &mut PgConnection,
    people: &People,
    hashes: Option<&Protection>,
) -> sqlx::Result<Erased> {
    let emails: Vec<String> = people
        .emails
        .iter()
        .map(|e| Identifier::Email.normalise(e))
        .collect();
    let phones: Vec<String> = people
        .phones
        .iter()
        .map(|p| Identifier::Phone.normalise(p))
        .collect();
    let hashed = |key: &str, values: &[String]| -> Vec<String> {
        hashes
            .map(|h| values.iter().filter_map(|v| h.hash_value(key, v)).collect())
            .unwrap_or_default()
    };
    let (email_hashes, phone_hashes) = (hashed("email", &emails), hashed("phone", &phones));
    let mut tx = conn.begin().await?;
    // Where a row is a person's, by any of the forms an email or phone may be stored in.
    let person = "(user_id = ANY($1) OR lower(btrim(user_email)) = ANY($2)
         OR user_email = ANY($3)
         OR '+' || regexp_replace(user_phone, '[^0-9]', '', 'g') = ANY($4)
         OR user_phone = ANY($5))";
    let found: Vec<String> = sqlx::query_scalar(&schema.sql(&format!(
        "SELECT DISTINCT user_id FROM linkrunner.attributed_users
         WHERE user_id IS NOT NULL AND NOT (user_id = ANY($1)) AND {person}"
    )))
    .bind(&people.user_ids)
    .bind(&emails)
    .bind(&email_hashes)
    .bind(&phones)
    .bind(&phone_hashes)
    .fetch_all(&mut *tx)
    .await?;
    // The same person's rows that carry neither the email nor the phone go too.
    let ids: Vec<String> = people.user_ids.iter().chain(&found).cloned().collect();
    let (users, devices): (i64, Vec<String>) = sqlx::query_as(&schema.sql(&format!(
        "WITH gone AS (
             DELETE FROM linkrunner.attributed_users WHERE {person}
             RETURNING campaign_display_id, attributed_at, row_key,
                 user_data #>> '{{device_data,gaid}}' AS gaid,
                 user_data #>> '{{device_data,idfa}}' AS idfa
         ), places AS (
             INSERT INTO linkrunner.forgotten_rows (campaign_display_id, attributed_at, key_digest)
             SELECT campaign_display_id, attributed_at,
                 encode(sha256(convert_to(row_key, 'UTF8')), 'hex')
             FROM gone ON CONFLICT DO NOTHING
         )
         SELECT (SELECT count(*) FROM gone),
             COALESCE((SELECT array_agg(DISTINCT d) FROM gone, unnest(ARRAY[gaid, idfa]) AS d
                       WHERE d IS NOT NULL), '{{}}')"
    )))
    .bind(&ids)
    .bind(&emails)
    .bind(&email_hashes)
    .bind(&phones)
    .bind(&phone_hashes)
    .fetch_one(&mut *tx)
    .await?;
    // Rows set aside: by their JSON where it could be stored, else by the text itself.
    let needles: Vec<String> = emails
        .iter()
        .cloned()
        .chain(ids.iter().map(|id| format!("\"{}\"", id.to_lowercase())))
        .collect();
    let rejected = sqlx::query(&schema.sql(
        "DELETE FROM linkrunner.rejected_rows WHERE kind = 'attributed_user' AND (
             raw #>> '{user_data,id}' = ANY($1)
             OR lower(btrim(raw #>> '{user_data,email}')) = ANY($2)
             OR raw #>> '{user_data,email}' = ANY($3)
             OR '+' || regexp_replace(raw #>> '{user_data,phone}', '[^0-9]', '', 'g') = ANY($4)
             OR raw #>> '{user_data,phone}' = ANY($5)
             OR (raw IS NULL AND EXISTS (
                 SELECT FROM unnest($6::text[]) AS n WHERE strpos(lower(raw_text), n) > 0)))",
    ))
    .bind(&ids)
    .bind(&emails)
    .bind(&email_hashes)
    .bind(&phones)
    .bind(&phone_hashes)
    .bind(&needles)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    let results = sqlx::query(&schema.sql(
        "DELETE FROM linkrunner.attribution_results
         WHERE (lookup_kind = 'user_id' AND lookup_value = ANY($1))
            OR (lookup_kind = 'device_identifier' AND lookup_value = ANY($2))",
    ))
    .bind(&ids)
    .bind(&devices)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    let entries: Vec<(Identifier, &String)> = ids
        .iter()
        .map(|v| (Identifier::UserId, v))
        .chain(people.emails.iter().map(|v| (Identifier::Email, v)))
        .chain(people.phones.iter().map(|v| (Identifier::Phone, v)))
        .collect();
    let kinds: Vec<&str> = entries.iter().map(|(k, _)| k.name()).collect();
    let digests: Vec<String> = entries.iter().map(|(k, v)| k.digest(v)).collect();
    let suppressed_new = sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.suppressed (kind, digest)
         SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
    ))
    .bind(&kinds)
    .bind(&digests)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    let suppressed_total: i64 =
        sqlx::query_scalar(&schema.sql("SELECT count(*) FROM linkrunner.suppressed"))
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Erased {
        attributed_users: users,
        rejected_rows: rejected,
        attribution_results: results,
        user_ids_found: found.len() as i64,
        suppressed_new,
        suppressed_total,
    })
}
