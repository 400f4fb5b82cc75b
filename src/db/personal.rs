//! The `--personal-data` mode a schema's rows were stored under, and the check that a run
//! keeps to it.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::Schema;
use crate::personal::{Mode, Protection};

/// What a schema records of how its personal data was stored.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    mode: String,
    keys: Vec<String>,
    key_check: Option<String>,
}

/// Why a run may not store under its `--personal-data` settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Disagrees(pub String);

/// Records the run's settings in a schema that holds none yet, and otherwise checks that they
/// are the recorded ones. A schema that already holds rows from before the mode was recorded
/// was stored as received: `keep`.
pub async fn check(
    schema: &Schema,
    conn: &mut PgConnection,
    personal: &Protection,
    run_id: Uuid,
) -> anyhow::Result<()> {
    let wanted = Recorded {
        mode: personal.mode.name().to_owned(),
        keys: sorted(&personal.keys),
        key_check: personal.key_check().filter(|_| personal.mode == Mode::Hash),
    };
    let held_rows: bool = sqlx::query_scalar(&schema.sql(
        "SELECT EXISTS (SELECT FROM linkrunner.attributed_users)
             OR EXISTS (SELECT FROM linkrunner.rejected_rows WHERE kind = 'attributed_user')",
    ))
    .fetch_one(&mut *conn)
    .await?;
    let first = if held_rows {
        Recorded {
            mode: Mode::Keep.name().to_owned(),
            keys: sorted(&Protection::default().keys),
            key_check: None,
        }
    } else {
        wanted.clone()
    };
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.personal_data (mode, keys, key_check, run_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT (only_row) DO NOTHING",
    ))
    .bind(&first.mode)
    .bind(&first.keys)
    .bind(&first.key_check)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    let (mode, keys, key_check): (String, Vec<String>, Option<String>) =
        sqlx::query_as(&schema.sql("SELECT mode, keys, key_check FROM linkrunner.personal_data"))
            .fetch_one(&mut *conn)
            .await?;
    let recorded = Recorded {
        mode,
        keys: sorted(&keys),
        key_check,
    };
    disagreement(schema, &recorded, &wanted).map_or(Ok(()), |why| Err(Disagrees(why).into()))
}

fn sorted(keys: &[String]) -> Vec<String> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

/// What differs between the schema's record and the run's settings, as the run's error.
fn disagreement(schema: &Schema, recorded: &Recorded, wanted: &Recorded) -> Option<String> {
    if recorded.mode != wanted.mode {
        return Some(format!(
            "schema {schema} holds personal data stored with --personal-data {}; this run asks \
             for {}, which would leave a mix: run with --personal-data {}, or sync into a new \
             --schema",
            recorded.mode, wanted.mode, recorded.mode
        ));
    }
    if recorded.mode != Mode::Keep.name() && recorded.keys != wanted.keys {
        return Some(format!(
            "schema {schema} was stored with --personal-data-keys {}; this run names {}, which \
             would leave a mix: run with the recorded keys, or sync into a new --schema",
            recorded.keys.join(","),
            wanted.keys.join(",")
        ));
    }
    if recorded.key_check != wanted.key_check {
        return Some(format!(
            "LINKRUNNER_PII_KEY is not the key schema {schema}'s personal data was hashed with: \
             the same person would hash two ways; set the original key"
        ));
    }
    None
}
