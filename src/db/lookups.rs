//! Attribution look-ups in Postgres: which ids are due, computed from the tables each time (so
//! nothing is lost to a crash and there is no queue to keep in step), and what each answered.

use super::Schema;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::model::lookup::{Answer, Attribution, LookupId, LookupKind, LookupSource};

/// Answers in a row that were not an attribution before an id is left alone (until a new
/// attribution row for it appears); the waits before each next try, in order.
pub const RETRY_WAITS: [&str; 5] = ["1 hour", "6 hours", "1 day", "3 days", "7 days"];

/// How long after an attribution its look-up may still answer without it. A row stored after an
/// id's look-up makes the id due again only when it was attributed less than this before the
/// look-up, or after it: an older one was already in the answer (a backfill stores many).
pub const SETTLE: &str = "1 day";

/// Why a `--lookup-from` column cannot be read, in a sentence for the operator; None when it
/// can.
pub async fn check_source(
    conn: &mut PgConnection,
    source: &LookupSource,
) -> sqlx::Result<Option<String>> {
    let row = sqlx::query(
        "SELECT c.oid IS NOT NULL AS table_exists, a.attname IS NOT NULL AS column_exists,
                a.attname IS NOT NULL
                    AND has_column_privilege(c.oid, a.attnum, 'SELECT') AS readable
         FROM (SELECT 1) AS one
         LEFT JOIN pg_namespace n ON n.nspname = $1
         LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = $2
             AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $3
             AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(&source.schema)
    .bind(&source.table)
    .bind(&source.column)
    .fetch_one(conn)
    .await?;
    let table = format!("{}.{}", source.schema, source.table);
    Ok(if !row.get::<bool, _>("table_exists") {
        Some(format!(
            "--lookup-from {source}: there is no table or view {table}"
        ))
    } else if !row.get::<bool, _>("column_exists") {
        Some(format!(
            "--lookup-from {source}: {table} has no column {}",
            source.column
        ))
    } else if !row.get::<bool, _>("readable") {
        Some(format!(
            "--lookup-from {source}: this role may not read {table}.{}",
            source.column
        ))
    } else {
        None
    })
}

/// A name as SQL: quoted, so any text is only ever a name.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The ids to look up with their attribution rows, and, per id, when it fell due. Ids come from
/// `attributed_users` (a user id, or for rows without one the GAID/IDFA of their device) and
/// from each `--lookup-from` column; an id is due when it was never looked up, when a row for
/// it appeared since that the look-up may not have seen (a reattribution can change the
/// answer; see [`SETTLE`]), or when its last answer was no attribution and its wait is over.
/// Long only for its SQL.
fn due_sql(schema: &Schema, sources: &[LookupSource]) -> String {
    let mut ids = String::from(schema.sql(
        "SELECT 'user_id' AS kind, user_id AS value, count(*) AS rows,
                min(first_synced_at) AS since, max(attributed_at) AS latest
         FROM linkrunner.attributed_users WHERE user_id <> '' GROUP BY user_id
         UNION ALL
         SELECT 'device_identifier', d.value, count(*), min(a.first_synced_at),
                max(a.attributed_at)
         FROM linkrunner.attributed_users a
         CROSS JOIN LATERAL (VALUES (a.user_data -> 'device_data' ->> 'gaid'),
                                    (a.user_data -> 'device_data' ->> 'idfa')) AS d(value)
         WHERE coalesce(a.user_id, '') = ''
           AND d.value NOT IN ('', '00000000-0000-0000-0000-000000000000')
         GROUP BY d.value",
    ));
    for s in sources {
        ids.push_str(&format!(
            "\n UNION ALL SELECT 'user_id', s.{col}::text, 0, NULL, NULL FROM {schema}.{table} AS s
             WHERE s.{col} IS NOT NULL AND s.{col}::text <> ''",
            col = quote(&s.column),
            schema = quote(&s.schema),
            table = quote(&s.table),
        ));
    }
    let waits = RETRY_WAITS
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH listed AS ({ids}),
         ids AS (
             SELECT kind, value, sum(rows)::int8 AS rows, min(since) AS since,
                 max(latest) AS latest
             FROM listed GROUP BY kind, value
         ),
         due AS (
             SELECT i.kind, i.value, i.rows,
                 CASE WHEN r.lookup_kind IS NULL THEN coalesce(i.since, now())
                      WHEN i.rows > r.attributions_seen
                           AND i.latest > r.checked_at - interval '{settle}'
                          THEN r.checked_at
                      WHEN r.found IS NOT TRUE AND r.misses BETWEEN 1 AND {max_misses}
                          THEN r.checked_at + (ARRAY[{waits}]::interval[])[r.misses]
                 END AS due_at
             FROM ids i
             LEFT JOIN {results} r
               ON r.lookup_kind = i.kind AND r.lookup_value = i.value
         )",
        max_misses = RETRY_WAITS.len(),
        settle = SETTLE,
        results = schema.table("attribution_results"),
    )
}

/// Up to `limit` due ids, the longest due first (an id never looked up is due since its first
/// row was stored; one of `--lookup-from` alone, since now); `skip` ids (this run's failures)
/// are left for the next run.
pub async fn due(
    schema: &Schema,
    conn: &mut PgConnection,
    sources: &[LookupSource],
    limit: u64,
    skip: &[(LookupKind, String)],
) -> sqlx::Result<Vec<LookupId>> {
    let sql = format!(
        "{} SELECT kind, value, rows FROM due
            WHERE due_at <= now()
              AND (kind, value) NOT IN (SELECT * FROM UNNEST($2::text[], $3::text[]))
            ORDER BY due_at, kind, value LIMIT $1",
        due_sql(schema, sources)
    );
    let rows = sqlx::query(&sql)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(skip.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
        .bind(skip.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| LookupId {
            kind: LookupKind::parse(r.get("kind")).expect("the query names only known kinds"),
            value: r.get("value"),
            attributions: r.get("rows"),
        })
        .collect())
}

/// How many ids are due now.
pub async fn due_count(
    schema: &Schema,
    conn: &mut PgConnection,
    sources: &[LookupSource],
) -> sqlx::Result<i64> {
    let sql = format!(
        "{} SELECT count(*) FROM due WHERE due_at <= now()",
        due_sql(schema, sources)
    );
    sqlx::query_scalar(&sql).fetch_one(conn).await
}

/// Records what a look-up answered. An answer that is not an attribution counts a miss, which
/// sets the wait before the next try; an attribution clears them. `changed_at` moves only
/// when the answer differs from the one before. Long only for its one statement's SQL and binds.
pub async fn record(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    id: &LookupId,
    answer: &Answer,
) -> sqlx::Result<()> {
    let none = Attribution::default();
    let (found, a, raw, raw_text, error) = match answer {
        Answer::Found { attribution, raw } => (Some(true), &**attribution, Some(raw), None, None),
        Answer::NotFound => (Some(false), &none, None, None, None),
        Answer::Unusable { reason, raw_text } => (None, &none, None, Some(raw_text), Some(reason)),
    };
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.attribution_results AS r (lookup_kind, lookup_value, found,
             campaign_name, display_id, deeplink, domain_name, ad_set_id, ad_set_name,
             ad_creative_id, ad_creative_name, keyword_id, keyword_name, ad_network,
             attribution_type, raw, raw_text, error, attributions_seen, misses, last_run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
             $16::text::jsonb, $17, $18, $19, CASE WHEN $3 THEN 0 ELSE 1 END, $20)
         ON CONFLICT (lookup_kind, lookup_value) DO UPDATE SET
             found = EXCLUDED.found, campaign_name = EXCLUDED.campaign_name,
             display_id = EXCLUDED.display_id, deeplink = EXCLUDED.deeplink,
             domain_name = EXCLUDED.domain_name, ad_set_id = EXCLUDED.ad_set_id,
             ad_set_name = EXCLUDED.ad_set_name, ad_creative_id = EXCLUDED.ad_creative_id,
             ad_creative_name = EXCLUDED.ad_creative_name, keyword_id = EXCLUDED.keyword_id,
             keyword_name = EXCLUDED.keyword_name, ad_network = EXCLUDED.ad_network,
             attribution_type = EXCLUDED.attribution_type, raw = EXCLUDED.raw,
             raw_text = EXCLUDED.raw_text, error = EXCLUDED.error,
             attributions_seen = EXCLUDED.attributions_seen,
             misses = CASE WHEN EXCLUDED.found THEN 0 ELSE r.misses + 1 END,
             checked_at = now(), last_run_id = EXCLUDED.last_run_id,
             changed_at = CASE
                 WHEN (r.found, r.campaign_name, r.display_id, r.deeplink, r.domain_name,
                       r.ad_set_id, r.ad_set_name, r.ad_creative_id, r.ad_creative_name,
                       r.keyword_id, r.keyword_name, r.ad_network, r.attribution_type, r.raw,
                       r.error)
                   IS DISTINCT FROM
                      (EXCLUDED.found, EXCLUDED.campaign_name, EXCLUDED.display_id,
                       EXCLUDED.deeplink, EXCLUDED.domain_name, EXCLUDED.ad_set_id,
                       EXCLUDED.ad_set_name, EXCLUDED.ad_creative_id, EXCLUDED.ad_creative_name,
                       EXCLUDED.keyword_id, EXCLUDED.keyword_name, EXCLUDED.ad_network,
                       EXCLUDED.attribution_type, EXCLUDED.raw, EXCLUDED.error)
                 THEN now() ELSE r.changed_at END",
    ))
    .bind(id.kind.as_str())
    .bind(&id.value)
    .bind(found)
    .bind(&a.campaign_name)
    .bind(&a.display_id)
    .bind(&a.deeplink)
    .bind(&a.domain_name)
    .bind(&a.ad_set_id)
    .bind(&a.ad_set_name)
    .bind(&a.ad_creative_id)
    .bind(&a.ad_creative_name)
    .bind(&a.keyword_id)
    .bind(&a.keyword_name)
    .bind(&a.ad_network)
    .bind(&a.attribution_type)
    .bind(raw)
    .bind(raw_text)
    .bind(error)
    .bind(id.attributions)
    .bind(run_id)
    .execute(conn)
    .await?;
    Ok(())
}
