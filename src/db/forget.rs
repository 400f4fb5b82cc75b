//! Erasing a person (`linkrunner-sync forget`): every row of theirs in the schema goes, and
//! the suppression list keeps later runs from storing them again.

use std::collections::HashSet;

use sqlx::{Connection, PgConnection};

use crate::db::Schema;
use futures::TryStreamExt;

use crate::model::personal::{self, Identifier, Protection, Suppressed, Suppression};

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
    pub webhook_events: i64,
    pub user_ids_found: i64,
    pub suppressed_new: i64,
    pub suppressed_total: i64,
}

/// Whether the suppression list holds anyone: a run that finds it empty asks no more.
pub async fn suppression(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<Suppression> {
    let listed: bool =
        sqlx::query_scalar(&schema.sql("SELECT EXISTS (SELECT FROM linkrunner.suppressed)"))
            .fetch_one(conn)
            .await?;
    Ok(Suppression { listed })
}

/// The entries of the suppression list among `probes`, by the list's key: one indexed look-up
/// per page, so a run holds only what its page needs, however long the list.
pub async fn suppressed_among(
    schema: &Schema,
    conn: &mut PgConnection,
    probes: Vec<(Identifier, String)>,
) -> sqlx::Result<Suppressed> {
    if probes.is_empty() {
        return Ok(Suppressed::default());
    }
    let (kinds, digests): (Vec<&str>, Vec<String>) =
        probes.into_iter().map(|(k, d)| (k.name(), d)).unzip();
    let rows: Vec<(String, String)> = sqlx::query_as(&schema.sql(
        "SELECT kind, digest FROM linkrunner.suppressed
         WHERE (kind, digest) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    ))
    .bind(&kinds)
    .bind(&digests)
    .fetch_all(conn)
    .await?;
    Ok(Suppressed::new(rows.into_iter().filter_map(
        |(kind, digest)| Some((Identifier::parse(&kind)?, digest)),
    )))
}

/// The user ids among `ids` that `forget` erased.
pub async fn suppressed_user_ids(
    schema: &Schema,
    conn: &mut PgConnection,
    ids: &[&str],
) -> sqlx::Result<Suppressed> {
    let probes = ids
        .iter()
        .map(|id| (Identifier::UserId, Identifier::UserId.digest(id)))
        .collect();
    suppressed_among(schema, conn, probes).await
}

/// Deletes every row of `people` in one transaction, and records them in the suppression
/// list. `hashes` finds their emails and phones where the schema stores them hashed.
///
/// Postgres cannot put a stored value in the normal form (it has no full case folding), so the
/// emails and phones stored are read once, row by row, and put in it here: what is deleted is
/// the stored spellings whose normal form is one of the people's.
pub async fn forget(
    schema: &Schema,
    conn: &mut PgConnection,
    people: &People,
    hashes: Option<&Protection>,
) -> sqlx::Result<Erased> {
    let emails: HashSet<String> = people
        .emails
        .iter()
        .map(|e| Identifier::Email.normalise(e))
        .collect();
    let phones: HashSet<String> = people
        .phones
        .iter()
        .map(|p| Identifier::Phone.normalise(p))
        .collect();
    let mut tx = conn.begin().await?;
    let person = whose(schema, &mut tx, people, (&emails, &phones), hashes).await?;
    let (users, devices) = delete_users(schema, &mut tx, &person).await?;
    // Rows set aside whose JSON could not be stored: their text, in the normal form, holding
    // an email or a quoted id.
    let needles: Vec<String> = emails
        .iter()
        .cloned()
        .chain(
            person
                .ids
                .iter()
                .map(|id| personal::normal_form(&format!("\"{id}\""))),
        )
        .collect();
    let rejected = delete_rejected(schema, &mut tx, &person, &needles).await?;
    let results = sqlx::query(&schema.sql(
        "DELETE FROM linkrunner.attribution_results
         WHERE (lookup_kind = 'user_id' AND lookup_value = ANY($1))
            OR (lookup_kind = 'device_identifier' AND lookup_value = ANY($2))",
    ))
    .bind(&person.ids)
    .bind(&devices)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    sqlx::query(&schema.sql(
        "WITH queued AS (
             DELETE FROM linkrunner.lookup_queue
             WHERE (lookup_kind = 'user_id' AND lookup_value = ANY($1))
                OR (lookup_kind = 'device_identifier' AND lookup_value = ANY($2))
         )
         DELETE FROM linkrunner.lookup_new_ids
         WHERE (lookup_kind = 'user_id' AND lookup_value = ANY($1))
            OR (lookup_kind = 'device_identifier' AND lookup_value = ANY($2))",
    ))
    .bind(&person.ids)
    .bind(&devices)
    .execute(&mut *tx)
    .await?;
    let events = sqlx::query(&schema.sql(
        "DELETE FROM linkrunner.webhook_events
         WHERE user_id = ANY($1) OR email = ANY($2) OR phone = ANY($3)",
    ))
    .bind(&person.ids)
    .bind(&person.emails)
    .bind(&person.phones)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    let (suppressed_new, suppressed_total) = suppress(schema, &mut tx, people, &person).await?;
    tx.commit().await?;
    Ok(Erased {
        attributed_users: users,
        rejected_rows: rejected,
        attribution_results: results,
        webhook_events: events,
        user_ids_found: person.others,
        suppressed_new,
        suppressed_total,
    })
}

/// What makes a stored row a person's: their ids (given, and found beside their email or
/// phone), and the emails and phones in every spelling stored whose normal form is theirs (or
/// its hash).
struct Person {
    ids: Vec<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    /// Of the ids, those found rather than given.
    others: i64,
    /// The index keys of `emails` and `phones`.
    email_keys: Vec<String>,
    phone_keys: Vec<String>,
}

/// Where a row is a person's: by id, or by a stored spelling of their email or phone, each
/// found through its key's index (migration 18; `$4` and `$5` are the spellings' keys, see
/// [`keys`]).
const PERSON: &str = "(user_id = ANY($1)
    OR (user_email IS NOT NULL AND linkrunner.email_key(user_email) = ANY($4)
        AND user_email = ANY($2))
    OR (user_phone IS NOT NULL AND linkrunner.phone_key(user_phone) = ANY($5)
        AND user_phone = ANY($3)))";

/// Rows that may hold a spelling of emails or phones by their keys: ASCII emails (`$1`) and
/// every phone (`$2`), whose keys are their normal forms, and other emails by their loose keys
/// (`$3`), to be compared in the normal form by the job.
const SPELLINGS: &str = "SELECT user_email, user_phone FROM linkrunner.attributed_users
    WHERE (user_email IS NOT NULL AND linkrunner.email_key(user_email) = ANY($1))
       OR (user_email ~ '[^\\x01-\\x7f]' AND linkrunner.email_loose(user_email) = ANY($3))
       OR (user_phone IS NOT NULL AND linkrunner.phone_key(user_phone) = ANY($2))";

/// The index keys of emails and phones, computed by the very functions the indexes use, and
/// bound as values so the planner sees how few they are.
async fn keys(
    schema: &Schema,
    tx: &mut PgConnection,
    emails: &[&String],
    phones: &[&String],
) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    sqlx::query_as(&schema.sql(
        "SELECT ARRAY(SELECT linkrunner.email_key(e) FROM unnest($1::text[]) AS e),
                ARRAY(SELECT linkrunner.phone_key(p) FROM unnest($2::text[]) AS p)",
    ))
    .bind(emails)
    .bind(phones)
    .fetch_one(tx)
    .await
}

async fn whose(
    schema: &Schema,
    tx: &mut PgConnection,
    people: &People,
    (emails, phones): (&HashSet<String>, &HashSet<String>),
    hashes: Option<&Protection>,
) -> sqlx::Result<Person> {
    let hashed = |key: &str, values: &[String]| -> Vec<String> {
        hashes
            .map(|h| values.iter().flat_map(|v| h.hash_values(key, v)).collect())
            .unwrap_or_default()
    };
    let mut found = Spellings::default();
    if !emails.is_empty() || !phones.is_empty() {
        let wanted = Wanted {
            emails,
            phones,
            hashed: hashes.is_some(),
        };
        let (normal_emails, normal_phones): (Vec<&String>, Vec<&String>) =
            (emails.iter().collect(), phones.iter().collect());
        let (email_keys, phone_keys) = keys(schema, tx, &normal_emails, &normal_phones).await?;
        let loose: Vec<String> = sqlx::query_scalar(
            &schema
                .sql("SELECT ARRAY(SELECT linkrunner.email_loose(e) FROM unnest($1::text[]) AS e)"),
        )
        .bind(&normal_emails)
        .fetch_one(&mut *tx)
        .await?;
        let sql = schema.sql(SPELLINGS);
        let stored = sqlx::query_as(&sql)
            .bind(email_keys)
            .bind(phone_keys)
            .bind(loose)
            .fetch(&mut *tx);
        found.read(stored, &wanted).await?;
        for sql in [
            "SELECT raw #>> '{user_data,email}', raw #>> '{user_data,phone}'
             FROM linkrunner.rejected_rows WHERE kind = 'attributed_user' AND raw IS NOT NULL",
            "SELECT email, phone FROM linkrunner.webhook_events
             WHERE email IS NOT NULL OR phone IS NOT NULL",
        ] {
            let sql = schema.sql(sql);
            found
                .read(sqlx::query_as(&sql).fetch(&mut *tx), &wanted)
                .await?;
        }
    }
    let mut emails: Vec<String> = found.emails.into_iter().collect();
    emails.extend(hashed("email", &people.emails));
    let mut phones: Vec<String> = found.phones.into_iter().collect();
    phones.extend(hashed("phone", &people.phones));
    let (email_keys, phone_keys) = keys(
        schema,
        tx,
        &emails.iter().collect::<Vec<_>>(),
        &phones.iter().collect::<Vec<_>>(),
    )
    .await?;
    let others: Vec<String> = sqlx::query_scalar(&schema.sql(&format!(
        "SELECT DISTINCT user_id FROM linkrunner.attributed_users
         WHERE user_id IS NOT NULL AND NOT (user_id = ANY($1)) AND {PERSON}"
    )))
    .bind(&people.user_ids)
    .bind(&emails)
    .bind(&phones)
    .bind(&email_keys)
    .bind(&phone_keys)
    .fetch_all(&mut *tx)
    .await?;
    // The same person's rows that carry neither the email nor the phone go too.
    Ok(Person {
        others: others.len() as i64,
        ids: people.user_ids.iter().chain(&others).cloned().collect(),
        emails,
        phones,
        email_keys,
        phone_keys,
    })
}

/// Deletes the person's rows, keeping where each was so a later run does not store it again;
/// returns how many went and the device ids they held.
async fn delete_users(
    schema: &Schema,
    tx: &mut PgConnection,
    person: &Person,
) -> sqlx::Result<(i64, Vec<String>)> {
    sqlx::query_as(&schema.sql(&format!(
        "WITH gone AS (
             DELETE FROM linkrunner.attributed_users WHERE {PERSON}
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
    .bind(&person.ids)
    .bind(&person.emails)
    .bind(&person.phones)
    .bind(&person.email_keys)
    .bind(&person.phone_keys)
    .fetch_one(&mut *tx)
    .await
}

/// Deletes the person's rows set aside: by the fields of their JSON, or, where it could not
/// be stored as JSON, by their text holding one of `needles`.
async fn delete_rejected(
    schema: &Schema,
    tx: &mut PgConnection,
    person: &Person,
    needles: &[String],
) -> sqlx::Result<i64> {
    let unreadable = unreadable_holding(schema, &mut *tx, needles).await?;
    let (campaigns, sha256s): (Vec<String>, Vec<String>) = unreadable.into_iter().unzip();
    let deleted = sqlx::query(&schema.sql(
        "DELETE FROM linkrunner.rejected_rows WHERE kind = 'attributed_user' AND (
             raw #>> '{user_data,id}' = ANY($1)
             OR raw #>> '{user_data,email}' = ANY($2)
             OR raw #>> '{user_data,phone}' = ANY($3)
             OR (campaign_display_id, raw_sha256) IN (
                 SELECT * FROM UNNEST($4::text[], $5::text[])))",
    ))
    .bind(&person.ids)
    .bind(&person.emails)
    .bind(&person.phones)
    .bind(&campaigns)
    .bind(&sha256s)
    .execute(&mut *tx)
    .await?;
    Ok(deleted.rows_affected() as i64)
}

/// Adds the person's ids, emails and phones to the suppression list; returns how many entries
/// are new, and how many it holds.
async fn suppress(
    schema: &Schema,
    tx: &mut PgConnection,
    people: &People,
    person: &Person,
) -> sqlx::Result<(i64, i64)> {
    let entries: Vec<(Identifier, &String)> = person
        .ids
        .iter()
        .map(|v| (Identifier::UserId, v))
        .chain(people.emails.iter().map(|v| (Identifier::Email, v)))
        .chain(people.phones.iter().map(|v| (Identifier::Phone, v)))
        .collect();
    let kinds: Vec<&str> = entries.iter().map(|(k, _)| k.name()).collect();
    let digests: Vec<String> = entries.iter().map(|(k, v)| k.digest(v)).collect();
    let new = sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.suppressed (kind, digest)
         SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
    ))
    .bind(&kinds)
    .bind(&digests)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    let total: i64 = sqlx::query_scalar(&schema.sql("SELECT count(*) FROM linkrunner.suppressed"))
        .fetch_one(&mut *tx)
        .await?;
    Ok((new, total))
}

/// The emails and phones looked for, in the normal form.
struct Wanted<'a> {
    emails: &'a HashSet<String>,
    phones: &'a HashSet<String>,
    /// The schema hashes: a stored hash is matched by the hashes, not read as a value.
    hashed: bool,
}

/// The stored spellings of the emails and phones looked for.
#[derive(Default)]
struct Spellings {
    emails: HashSet<String>,
    phones: HashSet<String>,
}

impl Spellings {
    /// Reads (email, phone) rows as a stream, keeping the spellings wanted: memory holds one
    /// row at a time and the matches.
    async fn read(
        &mut self,
        mut rows: impl futures::Stream<Item = sqlx::Result<(Option<String>, Option<String>)>> + Unpin,
        wanted: &Wanted<'_>,
    ) -> sqlx::Result<()> {
        while let Some((email, phone)) = rows.try_next().await? {
            let usable = |v: &String| !(wanted.hashed && is_hash(v));
            if let Some(email) = email.filter(usable) {
                if !wanted.emails.is_empty()
                    && !self.emails.contains(&email)
                    && wanted.emails.contains(&Identifier::Email.normalise(&email))
                {
                    self.emails.insert(email);
                }
            }
            if let Some(phone) = phone.filter(usable) {
                if !wanted.phones.is_empty()
                    && !self.phones.contains(&phone)
                    && wanted.phones.contains(&Identifier::Phone.normalise(&phone))
                {
                    self.phones.insert(phone);
                }
            }
        }
        Ok(())
    }
}

/// What `--personal-data hash` stores in place of a value.
fn is_hash(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The rows set aside as text only (their JSON could not be stored) whose text, in the normal
/// form, holds one of `needles`, by key; read as a stream.
async fn unreadable_holding(
    schema: &Schema,
    conn: &mut PgConnection,
    needles: &[String],
) -> sqlx::Result<Vec<(String, String)>> {
    let needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
    if needles.is_empty() {
        return Ok(Vec::new());
    }
    let finder = aho_corasick::AhoCorasick::new(&needles)
        .map_err(|e| sqlx::Error::Protocol(format!("searching the rows set aside: {e}")))?;
    let sql = schema.sql(
        "SELECT campaign_display_id, raw_sha256, raw_text FROM linkrunner.rejected_rows
         WHERE kind = 'attributed_user' AND raw IS NULL",
    );
    let mut rows = sqlx::query_as::<_, (String, String, String)>(&sql).fetch(conn);
    let mut out = Vec::new();
    while let Some((campaign, sha256, text)) = rows.try_next().await? {
        if finder.is_match(&caseless::default_case_fold_str(&text)) {
            out.push((campaign, sha256));
        }
    }
    Ok(out)
}
