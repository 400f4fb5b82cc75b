//! Database errors no retry cures: the statement fails the same way on every run until someone
//! fixes a grant, a table or the URL. Such an error ends a run as configuration (exit code 2),
//! saying what to fix; everything else, connection loss, serialization failures, lock and
//! statement timeouts, a server restarting, stays transient (exit code 1).

use crate::db::migrate::HistoryRefused;
use futures::future::BoxFuture;
use sqlx::{Connection, PgConnection};

use crate::db::SharedSession;

const SHARED: &str =
    "connect directly, or through a pool in session mode (PgBouncer's pool_mode = \
    session): the run lock and prepared statements need a session of the job's own";

const TLS: &str = "the TLS handshake with Postgres failed (check sslmode, and that sslrootcert \
    in DATABASE_URL names the CA that signed the server's certificate)";

const PRIVILEGES: &str = "the database user lacks privileges (migrations need the owner of the \
    job's schema, or CREATE on the database to make it; a sync needs the grants in \
    docs/deployment.md, Least privilege)";

const SHAPE: &str = "the job's schema holds a table, view or column of another shape than this \
    version of linkrunner-sync made (created by hand or by another tool?): move it away, or point \
    DATABASE_URL at another database";

/// SQLSTATEs of an object that is missing, already there, or of another kind or type.
const SHAPE_CODES: [&str; 14] = [
    "42P01", "42P06", "42P07", "42703", "42704", "42710", "42723", "42804", "42809", "42830",
    "42P10", "42P16", "2BP01", "3F000",
];

/// What to fix, for a database error that will repeat on every run; None for one that a later
/// attempt may not meet.
pub fn why(e: &sqlx::Error) -> Option<&'static str> {
    match e {
        sqlx::Error::Database(d) => why_code(d.code()?.as_ref()),
        sqlx::Error::Tls(_) => Some(TLS),
        // A certificate the handshake refused reaches the driver as an I/O error.
        sqlx::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => Some(TLS),
        _ => None,
    }
}

/// What to fix, for an SQLSTATE that will repeat on every run.
fn why_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "28P01" | "28000" => {
            "the server refused the login (check the user and password in DATABASE_URL)"
        }
        "3D000" => "the database does not exist (create it, or fix DATABASE_URL)",
        "42501" => PRIVILEGES,
        c if SHAPE_CODES.contains(&c) => SHAPE,
        "25006" => {
            "the database accepts no writes (a read-only standby, or \
            default_transaction_read_only): point DATABASE_URL at the primary"
        }
        "0A000" => "this Postgres server lacks a feature the job needs (is it too old?)",
        // The rest of class 42, "syntax error or access rule violation", fails alike each time.
        c if c.starts_with("42") => "the database refuses this statement, and will on every run",
        _ => return None,
    })
}

/// What to fix, when a migration cannot run as recorded.
fn migration(e: &HistoryRefused) -> &'static str {
    match e {
        HistoryRefused::Changed(_) | HistoryRefused::Unknown(_) => {
            "the schema was migrated by another version of linkrunner-sync: run that version, \
             or this one with another --schema"
        }
        HistoryRefused::Failed(_) => "repair that migration by hand",
    }
}

/// What to fix, for the first error in `e`'s chain that will repeat on every run.
pub fn in_chain(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            return why(e);
        }
        if cause.is::<SharedSession>() {
            return Some(SHARED);
        }
        cause.downcast_ref::<HistoryRefused>().map(migration)
    })
}

/// Errors worth retrying: the connection went away, or the server is restarting or busy.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("57P")
                || matches!(c.as_ref(), "40001" | "40P01" | "53300")
        }),
        _ => false,
    }
}

/// Whether Postgres refused a value itself (a number past `numeric`, a time past its range,
/// an index entry too large): the same item fails the same way every time.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => is_data_error_code(d.code().as_deref()),
        _ => false,
    }
}

fn is_data_error_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("22") || c.starts_with("54"))
}

/// The items Postgres refuses to store, by index, with its message. Each is written by `write`
/// in a savepoint that is rolled back, so nothing is stored: slow, and only for what a refusal
/// already failed, to find the items that caused it.
pub async fn refused<T>(
    conn: &mut PgConnection,
    items: &[T],
    write: impl for<'c> Fn(&'c mut PgConnection, &'c T) -> BoxFuture<'c, sqlx::Result<()>>,
) -> sqlx::Result<Vec<(usize, String)>> {
    let mut trial = conn.begin().await?;
    let mut refused = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut one = trial.begin().await?;
        match write(&mut one, item).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(d)) if is_data_error_code(d.code().as_deref()) => {
                refused.push((i, d.message().to_owned()));
            }
            Err(e) => return Err(e),
        }
        one.rollback().await?;
    }
    trial.rollback().await?;
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_trouble_is_never_a_refusal() {
        // Connection lost, server shutting down, serialization failure, deadlock, lock or
        // statement timeout, too many connections, disk full, out of memory, internal error,
        // a unique key raced, a value out of range.
        for code in [
            "08006", "08P01", "57P01", "57P03", "40001", "40P01", "55P03", "57014", "53300",
            "53100", "53200", "XX000", "23505", "22003",
        ] {
            assert_eq!(why_code(code), None, "{code}");
        }
        for code in [
            "42501", "42P07", "42703", "42P01", "42P10", "25006", "28P01", "3D000",
        ] {
            assert!(why_code(code).is_some(), "{code}");
        }
        assert!(why_code("42501").unwrap().contains("lacks privileges"));
        assert!(why_code("42P07").unwrap().contains("another shape"));
    }

    #[test]
    fn only_errors_that_repeat_are_refusals() {
        assert!(why(&sqlx::Error::PoolTimedOut).is_none());
        let io = sqlx::Error::Io(std::io::Error::other("connection reset"));
        assert!(in_chain(&anyhow::Error::new(io).context("storing campaigns")).is_none());
        let dirty = HistoryRefused::Failed(1);
        assert!(in_chain(&anyhow::Error::new(dirty)).is_some());
        let missing = HistoryRefused::Unknown(7);
        let e = anyhow::Error::new(missing).context("applying database migrations");
        assert!(in_chain(&e).unwrap().contains("another version"));
    }
}
