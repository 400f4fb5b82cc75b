//! Attribution look-ups in Postgres: which ids are due, kept in `lookup_queue` as rows are
//! stored (attributed_users' triggers note each row's ids in the transaction that stores it, so
//! nothing is lost to a crash), and what each answered.

use super::Schema;
use sqlx::{Connection, PgConnection, Row};
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

/// The rows of the ids in the CTE `wanted` (`kind, value`), found through the indexes on
/// `user_id` and on the advertising ids of rows without one: `kind, value, rows, since` (the
/// first row's storing) and `latest` (the last attribution). Ids without rows are left out.
fn ids_of(wanted: &str) -> String {
    format!(
        "SELECT w.kind, w.value, s.rows, s.since, s.latest
         FROM {wanted} w
         CROSS JOIN LATERAL (
             SELECT count(*) AS rows, min(a.first_synced_at) AS since,
                 max(a.attributed_at) AS latest
             FROM linkrunner.attributed_users a WHERE a.user_id = w.value
         ) s
         WHERE w.kind = 'user_id' AND s.rows > 0
         UNION ALL
         SELECT w.kind, w.value, s.rows, s.since, s.latest
         FROM {wanted} w
         CROSS JOIN LATERAL (
             SELECT count(*) FILTER (WHERE a.user_data #>> '{{device_data,gaid}}' = w.value)
                    + count(*) FILTER (WHERE a.user_data #>> '{{device_data,idfa}}' = w.value)
                    AS rows,
                 min(a.first_synced_at) AS since, max(a.attributed_at) AS latest
             FROM linkrunner.attributed_users a
             WHERE coalesce(a.user_id, '') = ''
               AND (a.user_data #>> '{{device_data,gaid}}' = w.value
                    OR a.user_data #>> '{{device_data,idfa}}' = w.value)
         ) s
         WHERE w.kind = 'device_identifier' AND s.rows > 0"
    )
}

/// When an id of `ids` (alias `i`) beside its last answer (`r`, if any) is due in
/// `lookup_queue`: never looked up (since its first row was stored), or with a row stored since
/// that the look-up may not have seen (a reattribution can change the answer; see [`SETTLE`]);
/// NULL when it is not. Ids waiting after a miss are due by `attribution_results.retry_at`.
fn queue_due() -> String {
    format!(
        "CASE WHEN r.lookup_kind IS NULL THEN i.since
              WHEN i.rows > r.attributions_seen AND i.latest > r.checked_at - interval '{SETTLE}'
                  THEN r.checked_at
         END"
    )
}

/// Every id of `attributed_users` with when it is due, read from the whole table: to fill
/// `lookup_queue` once, when look-ups begin.
fn all_ids_due(schema: &Schema) -> String {
    schema
        .sql(&format!(
            "WITH ids AS (
             SELECT 'user_id' AS kind, user_id AS value, count(*) AS rows,
                    min(first_synced_at) AS since, max(attributed_at) AS latest
             FROM linkrunner.attributed_users WHERE user_id <> '' GROUP BY user_id
             UNION ALL
             SELECT 'device_identifier', d.value, count(*), min(a.first_synced_at),
                    max(a.attributed_at)
             FROM linkrunner.attributed_users a
             CROSS JOIN LATERAL (VALUES (a.user_data #>> '{{device_data,gaid}}'),
                                        (a.user_data #>> '{{device_data,idfa}}')) AS d(value)
             WHERE coalesce(a.user_id, '') = ''
               AND d.value NOT IN ('', '00000000-0000-0000-0000-000000000000')
             GROUP BY d.value
         )
         SELECT i.kind, i.value, {due} AS due_at
         FROM ids i
         LEFT JOIN linkrunner.attribution_results r
           ON r.lookup_kind = i.kind AND r.lookup_value = i.value",
            due = queue_due()
        ))
        .into_owned()
}

/// Whether the triggers note the ids of rows stored (see migration 19).
async fn watching(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar(&schema.sql("SELECT EXISTS (SELECT FROM linkrunner.lookup_watch)"))
        .fetch_one(conn)
        .await
}

/// Before the first look-ups: every id then due goes into `lookup_queue` (one read of the whole
/// table), and from then on the triggers note the ids of the rows stored. Runs under the run's
/// lock, before any stream writes, so no row falls between the two.
pub async fn watch(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<()> {
    if watching(schema, conn).await? {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    sqlx::query(
        &schema.sql("INSERT INTO linkrunner.lookup_watch DEFAULT VALUES ON CONFLICT DO NOTHING"),
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {queue} (lookup_kind, lookup_value, due_at)
         SELECT kind, value, due_at FROM ({all}) AS due WHERE due_at IS NOT NULL
         ON CONFLICT (lookup_kind, lookup_value) DO NOTHING",
        queue = schema.table("lookup_queue"),
        all = all_ids_due(schema),
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Moves the ids the triggers noted into `lookup_queue`, those that are due. Only the noted
/// rows this statement sees are taken, so one committed meanwhile waits for the next time.
async fn take_noted(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(&format!(
        "WITH taken AS (
             DELETE FROM linkrunner.lookup_new_ids
             RETURNING lookup_kind AS kind, lookup_value AS value
         ),
         wanted AS (SELECT DISTINCT kind, value FROM taken),
         ids AS ({ids}),
         due AS (
             SELECT i.kind, i.value, {due} AS due_at
             FROM ids i
             LEFT JOIN linkrunner.attribution_results r
               ON r.lookup_kind = i.kind AND r.lookup_value = i.value
         )
         INSERT INTO linkrunner.lookup_queue AS q (lookup_kind, lookup_value, due_at)
         SELECT kind, value, due_at FROM due WHERE due_at IS NOT NULL
         ON CONFLICT (lookup_kind, lookup_value) DO UPDATE
             SET due_at = LEAST(q.due_at, EXCLUDED.due_at)",
        ids = ids_of("wanted"),
        due = queue_due(),
    )))
    .execute(conn)
    .await?;
    Ok(())
}

/// The ids of every `--lookup-from` column (`kind, value`), as SQL; None without sources.
fn source_ids(sources: &[LookupSource]) -> Option<String> {
    let selects: Vec<String> = sources
        .iter()
        .map(|s| {
            format!(
                "SELECT 'user_id' AS kind, s.{col}::text AS value FROM {schema}.{table} AS s
                 WHERE s.{col} IS NOT NULL AND s.{col}::text <> ''",
                col = quote(&s.column),
                schema = quote(&s.schema),
                table = quote(&s.table),
            )
        })
        .collect();
    (!selects.is_empty()).then(|| selects.join("\n UNION ALL "))
}

/// Up to `limit` due ids, the longest due first (an id never looked up is due since its first
/// row was stored; one of `--lookup-from` alone, since now); `skip` ids (this run's failures)
/// are left for the next run. Each comes from an index: `lookup_queue`, the retries of
/// `attribution_results`, and the ids of the `--lookup-from` columns never looked up (which
/// are read whole, being the operator's tables).
pub async fn due(
    schema: &Schema,
    conn: &mut PgConnection,
    sources: &[LookupSource],
    limit: u64,
    skip: &[(LookupKind, String)],
) -> sqlx::Result<Vec<LookupId>> {
    take_noted(schema, conn).await?;
    let from_sources = source_ids(sources);
    let unseen = from_sources.as_ref().map_or(String::new(), |ids| {
        format!(
            "UNION ALL
             (SELECT src.kind, src.value, now() FROM ({ids}) AS src
              WHERE NOT EXISTS (SELECT FROM linkrunner.attribution_results r
                                WHERE r.lookup_kind = src.kind AND r.lookup_value = src.value)
                AND (src.kind, src.value) NOT IN (SELECT * FROM skip)
              LIMIT $1)"
        )
    });
    let in_sources = from_sources.as_ref().map_or("false".to_owned(), |ids| {
        format!("(f.kind, f.value) IN (SELECT kind, value FROM ({ids}) AS src)")
    });
    let sql = schema
        .sql(&format!(
            "WITH skip AS (SELECT * FROM UNNEST($2::text[], $3::text[]) AS s(kind, value)),
         picked AS (
             (SELECT lookup_kind AS kind, lookup_value AS value, due_at
              FROM linkrunner.lookup_queue
              WHERE due_at <= now() AND (lookup_kind, lookup_value) NOT IN (SELECT * FROM skip)
              ORDER BY due_at, lookup_kind, lookup_value LIMIT $1)
             UNION ALL
             (SELECT lookup_kind, lookup_value, retry_at
              FROM linkrunner.attribution_results
              WHERE retry_at <= now() AND (lookup_kind, lookup_value) NOT IN (SELECT * FROM skip)
              ORDER BY retry_at LIMIT $1)
             {unseen}
         ),
         wanted AS (
             SELECT kind, value, min(due_at) AS due_at FROM picked
             GROUP BY kind, value ORDER BY 3, 1, 2 LIMIT $1
         ),
         ids AS ({ids})
         SELECT f.kind, f.value, coalesce(i.rows, 0) AS rows,
                i.kind IS NOT NULL OR {in_sources} AS live
         FROM wanted f LEFT JOIN ids i ON i.kind = f.kind AND i.value = f.value
         ORDER BY f.due_at, f.kind, f.value",
            ids = ids_of("wanted"),
        ))
        .into_owned();
    loop {
        let rows = sqlx::query(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(skip.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .bind(skip.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        let (live, gone): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.get("live"));
        if gone.is_empty() || !live.is_empty() {
            if !gone.is_empty() {
                let gone: Vec<(String, String)> = gone
                    .iter()
                    .map(|r| (r.get("kind"), r.get("value")))
                    .collect();
                drop_ids(schema, conn, &gone).await?;
            }
            return Ok(live
                .into_iter()
                .map(|r| LookupId {
                    kind: LookupKind::parse(r.get("kind"))
                        .expect("the query names only known kinds"),
                    value: r.get("value"),
                    attributions: r.get("rows"),
                })
                .collect());
        }
        // Every pick was an id whose rows are gone (forgotten, or rewritten under other
        // personal-data settings): dropped, and the next ones asked for.
        let gone: Vec<(String, String)> = gone
            .iter()
            .map(|r| (r.get("kind"), r.get("value")))
            .collect();
        drop_ids(schema, conn, &gone).await?;
    }
}

/// Takes ids no row or `--lookup-from` column holds any more out of the look-ups due.
async fn drop_ids(
    schema: &Schema,
    conn: &mut PgConnection,
    ids: &[(String, String)],
) -> sqlx::Result<()> {
    let (kinds, values): (Vec<&str>, Vec<&str>) =
        ids.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
    sqlx::query(&schema.sql(
        "WITH gone AS (SELECT * FROM UNNEST($1::text[], $2::text[]) AS g(kind, value)),
         queued AS (
             DELETE FROM linkrunner.lookup_queue q USING gone
             WHERE q.lookup_kind = gone.kind AND q.lookup_value = gone.value
         )
         UPDATE linkrunner.attribution_results r SET retry_at = NULL FROM gone
         WHERE r.lookup_kind = gone.kind AND r.lookup_value = gone.value",
    ))
    .bind(kinds)
    .bind(values)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many ids are due now, reading only (for `--dry-run`).
pub async fn due_count(
    schema: &Schema,
    conn: &mut PgConnection,
    sources: &[LookupSource],
) -> sqlx::Result<i64> {
    let queued = if watching(schema, conn).await? {
        let noted = format!(
            "WITH wanted AS (SELECT DISTINCT lookup_kind AS kind, lookup_value AS value
                             FROM linkrunner.lookup_new_ids) {}",
            ids_of("wanted")
        );
        format!(
            "SELECT lookup_kind AS kind, lookup_value AS value FROM linkrunner.lookup_queue
             WHERE due_at <= now()
             UNION
             SELECT i.kind, i.value FROM ({noted}) i
             LEFT JOIN linkrunner.attribution_results r
               ON r.lookup_kind = i.kind AND r.lookup_value = i.value
             WHERE {due} <= now()",
            due = queue_due(),
        )
    } else {
        format!(
            "SELECT kind, value FROM ({}) AS due WHERE due_at <= now()",
            all_ids_due(schema)
        )
    };
    let unseen = source_ids(sources).map_or(String::new(), |ids| {
        format!(
            "UNION SELECT src.kind, src.value FROM ({ids}) AS src
             WHERE NOT EXISTS (SELECT FROM linkrunner.attribution_results r
                               WHERE r.lookup_kind = src.kind AND r.lookup_value = src.value)"
        )
    });
    let sql = schema
        .sql(&format!(
            "SELECT count(*) FROM (
             {queued}
             UNION
             SELECT lookup_kind, lookup_value FROM linkrunner.attribution_results
             WHERE retry_at <= now()
             {unseen}
         ) AS due"
        ))
        .into_owned();
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
    let mut tx = conn.begin().await?;
    sqlx::query(&schema.sql(&format!(
        "INSERT INTO linkrunner.attribution_results AS r (lookup_kind, lookup_value, found,
             campaign_name, display_id, deeplink, domain_name, ad_set_id, ad_set_name,
             ad_creative_id, ad_creative_name, keyword_id, keyword_name, ad_network,
             attribution_type, raw, raw_text, error, attributions_seen, misses, retry_at,
             last_run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
             $16::text::jsonb, $17, $18, $19, CASE WHEN $3 THEN 0 ELSE 1 END,
             CASE WHEN $3 THEN NULL ELSE now() + (ARRAY[{waits}]::interval[])[1] END, $20)
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
             retry_at = CASE WHEN EXCLUDED.found THEN NULL
                             WHEN r.misses + 1 <= {max_misses}
                                 THEN now() + (ARRAY[{waits}]::interval[])[r.misses + 1]
                        END,
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
        waits = waits(),
        max_misses = RETRY_WAITS.len(),
    )))
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
    .execute(&mut *tx)
    .await?;
    requeue(schema, &mut tx, id).await?;
    tx.commit().await
}

/// Takes a looked-up id out of the queue, or keeps it due when a row stored meanwhile may be
/// missing from the answer just recorded.
async fn requeue(schema: &Schema, conn: &mut PgConnection, id: &LookupId) -> sqlx::Result<()> {
    sqlx::query(
        &schema.sql(
            "DELETE FROM linkrunner.lookup_queue WHERE lookup_kind = $1 AND lookup_value = $2",
        ),
    )
    .bind(id.kind.as_str())
    .bind(&id.value)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&schema.sql(&format!(
        "WITH wanted AS (SELECT $1::text AS kind, $2::text AS value),
         ids AS ({ids})
         INSERT INTO linkrunner.lookup_queue (lookup_kind, lookup_value, due_at)
         SELECT i.kind, i.value, {due}
         FROM ids i
         JOIN linkrunner.attribution_results r
           ON r.lookup_kind = i.kind AND r.lookup_value = i.value
         WHERE {due} IS NOT NULL",
        ids = ids_of("wanted"),
        due = queue_due(),
    )))
    .bind(id.kind.as_str())
    .bind(&id.value)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`RETRY_WAITS`] as the items of an SQL array.
fn waits() -> String {
    RETRY_WAITS
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
