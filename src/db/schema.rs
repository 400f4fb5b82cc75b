//! The job's SQL written for a project's schema, and the schema's run locks.

use std::borrow::Cow;

use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, Postgres};

pub use crate::model::schema::{Schema, DEFAULT};

/// How the job's SQL names its own objects; every statement is written with this prefix and
/// pointed at the run's schema by [`Schema::sql`].
const PREFIX: &str = "linkrunner.";

impl Schema {
    /// `table` of this schema, quoted, e.g. `"linkrunner".campaigns`.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.quoted())
    }

    /// `sql`, written for the default schema, pointed at this one.
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if sql.contains(PREFIX) {
            Cow::Owned(sql.replace(PREFIX, &format!("{}.", self.quoted())))
        } else {
            Cow::Borrowed(sql)
        }
    }

    /// The key of this schema's run lock (two 32-bit halves, a key space of its own). The
    /// default schema keeps the single 64-bit key of earlier versions, so a run of an older
    /// version and one of this version still exclude each other.
    pub fn lock_key(&self) -> LockKey {
        if self.name() == DEFAULT {
            LockKey::Single(LEGACY_LOCK_KEY)
        } else {
            LockKey::Pair(LOCK_CLASS, self.name().to_owned())
        }
    }

    /// The key of this schema's reporting lock: a class of its own, and the schema's name.
    pub fn reporting_lock_key(&self) -> LockKey {
        LockKey::Pair(REPORTING_LOCK_CLASS, self.name().to_owned())
    }
}

/// Advisory lock key of the default schema ("lrsync" in ASCII).
const LEGACY_LOCK_KEY: i64 = 0x6c72_7379_6e63;

/// First half of every other schema's lock key ("lrsy" in ASCII); the second is the hash of
/// the schema's name.
const LOCK_CLASS: i32 = 0x6c72_7379;

/// First half of every schema's reporting lock key ("lrrp" in ASCII).
const REPORTING_LOCK_CLASS: i32 = 0x6c72_7270;

/// An advisory lock key, as the SQL that takes, holds and frees it binds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockKey {
    Single(i64),
    Pair(i32, String),
}

/// What taking a run lock found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Now,
    ByAnother,
    /// The session held it before it asked.
    Already,
}

impl LockKey {
    /// Takes the lock for this session. A session may take an advisory lock it holds again, so
    /// the same statement first looks whether it held it already.
    pub async fn try_lock(&self, conn: &mut PgConnection) -> sqlx::Result<Taken> {
        // pg_locks splits a 64-bit key in halves, and marks a pair of keys with objsubid 2.
        let (key, held) = match self {
            LockKey::Single(_) => (
                "$1",
                "classid = ($1 >> 32)::oid AND objid = ($1 & 4294967295)::oid AND objsubid = 1",
            ),
            LockKey::Pair(..) => (
                "$1, hashtext($2)",
                "classid = $1::oid AND objid = hashtext($2)::oid AND objsubid = 2",
            ),
        };
        let sql = format!(
            "SELECT CASE WHEN EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND {held}) THEN NULL \
             ELSE pg_try_advisory_lock({key}) END"
        );
        let got: Option<bool> = self.bind(sqlx::query_scalar(&sql)).fetch_one(conn).await?;
        Ok(match got {
            None => Taken::Already,
            Some(true) => Taken::Now,
            Some(false) => Taken::ByAnother,
        })
    }

    pub async fn unlock(&self, conn: &mut PgConnection) -> sqlx::Result<bool> {
        let sql = match self {
            LockKey::Single(_) => "SELECT pg_advisory_unlock($1)",
            LockKey::Pair(..) => "SELECT pg_advisory_unlock($1, hashtext($2))",
        };
        self.bind(sqlx::query_scalar(sql)).fetch_one(conn).await
    }

    fn bind<'q, T>(
        &'q self,
        query: QueryScalar<'q, Postgres, T, PgArguments>,
    ) -> QueryScalar<'q, Postgres, T, PgArguments> {
        match self {
            LockKey::Single(key) => query.bind(*key),
            LockKey::Pair(class, name) => query.bind(*class).bind(name.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_is_pointed_at_the_schema_quoted() {
        let s = Schema::parse("app2").unwrap();
        assert_eq!(
            s.sql("SELECT * FROM linkrunner.campaigns JOIN linkrunner.sync_runs"),
            "SELECT * FROM \"app2\".campaigns JOIN \"app2\".sync_runs"
        );
        assert_eq!(s.sql("SELECT 1"), "SELECT 1");
        assert_eq!(s.table("campaigns"), "\"app2\".campaigns");
        let default = Schema::default();
        assert_eq!(default.sql("FROM linkrunner.x"), "FROM \"linkrunner\".x");
    }

    #[test]
    fn each_schema_has_a_lock_of_its_own() {
        assert_eq!(
            Schema::default().lock_key(),
            LockKey::Single(LEGACY_LOCK_KEY)
        );
        let a = Schema::parse("app_a").unwrap().lock_key();
        let b = Schema::parse("app_b").unwrap().lock_key();
        assert_ne!(a, b);
    }
}
