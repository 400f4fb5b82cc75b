//! Migrations, per schema. The files under `migrations/` are written for schema `linkrunner`;
//! each run points them at its own schema, and the history of what was applied lives in that
//! schema too (`schema_migrations`), so projects in one database migrate independently.

use anyhow::Context;
use sqlx::migrate::Migration;
use sqlx::{Connection, Executor, PgConnection};

use super::schema::{self, Schema};

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The statement of the first migration that creates the default schema; the runner creates
/// the run's schema itself, and only when it is missing, so an owner without CREATE on the
/// database can migrate a schema made for it.
const CREATE_DEFAULT_SCHEMA: &str = "CREATE SCHEMA IF NOT EXISTS linkrunner;";

/// Why the recorded history cannot be carried forward; the same on every run until fixed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryRefused {
    #[error(
        "migration {0} was applied with other content than this version of linkrunner-sync holds"
    )]
    Changed(i64),
    #[error("migration {0} was applied by a newer version of linkrunner-sync and is missing here")]
    Unknown(i64),
    #[error("migration {0} is recorded as partially applied")]
    Failed(i64),
}

/// The `migrate` command: applies what is missing and moves a history kept by an earlier
/// version into the schema.
pub async fn migrate(conn: &mut PgConnection, schema: &Schema) -> anyhow::Result<()> {
    bring_up(conn, schema, false).await
}

/// Before a run: applies what is missing. A complete history kept by an earlier version is
/// good enough, so a role that may not create tables keeps running after an upgrade.
pub async fn prepare(conn: &mut PgConnection, schema: &Schema) -> anyhow::Result<()> {
    bring_up(conn, schema, true).await
}

async fn bring_up(
    conn: &mut PgConnection,
    schema: &Schema,
    earlier_history_will_do: bool,
) -> anyhow::Result<()> {
    match history(conn, schema).await {
        Ok(h) if h.complete() && (earlier_history_will_do || !h.legacy) => Ok(()),
        _ => apply(conn, schema)
            .await
            .context("applying database migrations"),
    }
}

/// The versions applied, and whether they were read from an earlier version's table.
struct History {
    versions: Vec<i64>,
    legacy: bool,
}

impl History {
    fn complete(&self) -> bool {
        self.versions.len() == embedded().count()
    }
}

fn embedded() -> impl Iterator<Item = &'static Migration> {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// A migration's SQL for `schema`.
pub fn migration_sql(m: &Migration, schema: &Schema) -> String {
    schema.sql(&m.sql).replacen(CREATE_DEFAULT_SCHEMA, "", 1)
}

/// The versions applied, each checked against the embedded migration of that version.
async fn history(conn: &mut PgConnection, schema: &Schema) -> anyhow::Result<History> {
    let table = schema.table("schema_migrations");
    let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<(i64, Vec<u8>)> = if present {
        let sql = format!("SELECT version, checksum FROM {table} ORDER BY version");
        sqlx::query_as(&sql).fetch_all(&mut *conn).await?
    } else {
        legacy_history(conn, schema).await?
    };
    check(&rows)?;
    Ok(History {
        versions: rows.into_iter().map(|(v, _)| v).collect(),
        legacy: !present,
    })
}

fn check(rows: &[(i64, Vec<u8>)]) -> Result<(), HistoryRefused> {
    for (version, checksum) in rows {
        match embedded().find(|m| m.version == *version) {
            None => return Err(HistoryRefused::Unknown(*version)),
            Some(m) if m.checksum[..] != checksum[..] => {
                return Err(HistoryRefused::Changed(*version))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Versions before `--schema` kept the default schema's history in `public._sqlx_migrations`
/// (the table sqlx's own migrator keeps); it is carried into the schema on its first migration.
async fn legacy_history(
    conn: &mut PgConnection,
    schema: &Schema,
) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
    if schema.name() != schema::DEFAULT {
        return Ok(Vec::new());
    }
    let present: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !present {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, Vec<u8>, bool)> = sqlx::query_as(
        "SELECT version, checksum, success FROM public._sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?;
    // Other tools' sqlx migrations may share the table: only this job's versions are its own.
    let mut ours = Vec::new();
    for (version, checksum, success) in rows {
        if embedded().any(|m| m.version == version) {
            if !success {
                return Err(HistoryRefused::Failed(version).into());
            }
            ours.push((version, checksum));
        }
    }
    Ok(ours)
}

/// Applies what is missing in one transaction, under a lock of the schema's own, so a second
/// migrator waits and then finds nothing to do.
async fn apply(conn: &mut PgConnection, schema: &Schema) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('linkrunner-sync migrate'), hashtext($1))")
        .bind(schema.name())
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regnamespace($1) IS NOT NULL")
        .bind(schema.quoted())
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        let sql = format!("CREATE SCHEMA {}", schema.quoted());
        sqlx::query(&sql).execute(&mut *tx).await?;
    }
    let applied = history(&mut tx, schema).await?.versions;
    let table = schema.table("schema_migrations");
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             version bigint PRIMARY KEY,
             description text NOT NULL,
             checksum bytea NOT NULL,
             installed_on timestamptz NOT NULL DEFAULT now()
         )"
    );
    sqlx::query(&create).execute(&mut *tx).await?;
    let record = format!(
        "INSERT INTO {table} (version, description, checksum) VALUES ($1, $2, $3)
         ON CONFLICT (version) DO NOTHING"
    );
    for m in embedded() {
        if !applied.contains(&m.version) {
            let sql = migration_sql(m, schema);
            // A plain string runs as a simple query, which may hold many statements.
            let applied = (&mut *tx).execute(sql.as_str()).await;
            applied.with_context(|| format!("migration {} ({})", m.version, m.description))?;
        }
        // Versions carried over from the old history are recorded here too.
        sqlx::query(&record)
            .bind(m.version)
            .bind(&*m.description)
            .bind(&*m.checksum)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migration naming the schema any other way than `linkrunner.` would land in the default
    /// schema whatever `--schema` says.
    #[test]
    fn every_migration_names_the_schema_only_as_the_runner_rewrites_it() {
        let other = Schema::parse("app2").unwrap();
        for m in embedded() {
            let sql = migration_sql(m, &other);
            let code: String = sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !code.to_lowercase().contains("linkrunner"),
                "migration {} names linkrunner outside a comment",
                m.version
            );
        }
    }
}
