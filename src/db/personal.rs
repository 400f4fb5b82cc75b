//! The `--personal-data` settings a schema's rows were stored under, the check that a run keeps
//! to them, and the rewrite of what is stored when a run asks for stricter ones.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::Schema;
use crate::model::personal::{Mode, Protection};

mod rewrite;

pub use rewrite::{rewrite, Rewritten};

/// Settings as a schema records them.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    mode: String,
    keys: Vec<String>,
    key_check: Option<String>,
}

impl Settings {
    fn of(personal: &Protection) -> Settings {
        Settings {
            mode: personal.mode.name().to_owned(),
            keys: sorted(&personal.keys),
            key_check: personal.key_check(),
        }
    }

    fn keep() -> Settings {
        Settings::of(&Protection::default())
    }

    fn mode(&self) -> Mode {
        Mode::parse(&self.mode).unwrap_or(Mode::Keep)
    }

    fn describe(&self) -> String {
        match self.mode() {
            Mode::Keep => "--personal-data keep".to_owned(),
            mode => format!(
                "--personal-data {} --personal-data-keys {}",
                mode.name(),
                self.keys.join(",")
            ),
        }
    }

    /// The same, as far as what is stored goes: keys mean nothing when values are kept.
    fn same(&self, other: &Settings) -> bool {
        self.mode == other.mode
            && (self.mode() == Mode::Keep
                || (self.keys == other.keys && self.key_check == other.key_check))
    }
}

/// Why a run may not store under its `--personal-data` settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Disagrees(pub String);

/// What a run must do before it stores anything.
#[derive(Debug)]
pub enum Plan {
    Ready,
    /// Rewrite what is stored, from where an earlier run left off.
    Rewrite(Rewrite),
}

/// A rewrite of the stored personal data, under way.
#[derive(Debug)]
pub struct Rewrite {
    from: Settings,
    to: Settings,
    started: DateTime<Utc>,
    /// The last campaign and instant rewritten; None before the first batch.
    through: Option<(String, DateTime<Utc>)>,
}

type Row = (
    String,
    Vec<String>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// Records the run's settings in a schema that holds none yet, and otherwise checks them
/// against the recorded ones. Rows stored before the settings were recorded were stored as
/// received (`keep`). Stricter settings rewrite what is stored when `rewrite` allows it.
pub async fn check(
    schema: &Schema,
    conn: &mut PgConnection,
    personal: &Protection,
    run_id: Uuid,
    rewrite: bool,
) -> anyhow::Result<Plan> {
    let wanted = Settings::of(personal);
    let row = match recorded_row(schema, conn).await? {
        Some(row) => row,
        // Only the first run of a schema looks at what it holds already.
        None => {
            record_first(schema, conn, &wanted, run_id).await?;
            recorded_row(schema, conn)
                .await?
                .expect("the settings were just recorded")
        }
    };
    let Recorded {
        settings: recorded,
        target,
        started,
        through,
    } = settings_of(row);
    match decide(schema, &recorded, target.as_ref(), &wanted, rewrite)? {
        Decision::Ready => return Ok(Plan::Ready),
        Decision::Resume => {
            return Ok(Plan::Rewrite(Rewrite {
                from: recorded,
                to: target.expect("a rewrite under way has a target"),
                started: started.expect("a rewrite under way has a start"),
                through,
            }))
        }
        Decision::Start => {}
    }
    let started: DateTime<Utc> = sqlx::query_scalar(&schema.sql(
        "UPDATE linkrunner.personal_data SET to_mode = $1, to_keys = $2, to_key_check = $3,
             rewrite_started = now(), through_campaign = NULL, through_at = NULL,
             rows_rewritten = 0
         RETURNING rewrite_started",
    ))
    .bind(&wanted.mode)
    .bind(&wanted.keys)
    .bind(&wanted.key_check)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Plan::Rewrite(Rewrite {
        from: recorded,
        to: wanted,
        started,
        through: None,
    }))
}

/// What the schema records, if it records anything yet.
async fn recorded_row(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<Option<Row>> {
    sqlx::query_as(&schema.sql(
        "SELECT mode, keys, key_check, to_mode, to_keys, to_key_check, rewrite_started,
                through_campaign, through_at
         FROM linkrunner.personal_data",
    ))
    .fetch_optional(conn)
    .await
}

/// Records the settings of a schema's first run: `keep` when it already holds rows stored
/// before the settings were recorded, else the run's own.
async fn record_first(
    schema: &Schema,
    conn: &mut PgConnection,
    wanted: &Settings,
    run_id: Uuid,
) -> sqlx::Result<()> {
    let held_rows: bool = sqlx::query_scalar(&schema.sql(
        "SELECT EXISTS (SELECT FROM linkrunner.attributed_users)
             OR EXISTS (SELECT FROM linkrunner.rejected_rows WHERE kind = 'attributed_user')",
    ))
    .fetch_one(&mut *conn)
    .await?;
    let first = if held_rows {
        Settings::keep()
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
    .execute(conn)
    .await?;
    Ok(())
}

/// What a schema records: its settings, and a rewrite under way (its target, when it started,
/// how far it got).
struct Recorded {
    settings: Settings,
    target: Option<Settings>,
    started: Option<DateTime<Utc>>,
    through: Option<(String, DateTime<Utc>)>,
}

fn settings_of(row: Row) -> Recorded {
    let (mode, keys, key_check, to_mode, to_keys, to_key_check, started, campaign, at) = row;
    let settings = Settings {
        mode,
        keys: sorted(&keys),
        key_check,
    };
    let target = to_mode.zip(to_keys).map(|(mode, keys)| Settings {
        mode,
        keys: sorted(&keys),
        key_check: to_key_check,
    });
    Recorded {
        settings,
        target,
        started,
        through: campaign.zip(at),
    }
}

/// What a run with `wanted` settings must do first.
#[derive(Debug, PartialEq)]
enum Decision {
    Ready,
    /// Begin rewriting what is stored.
    Start,
    /// Finish the rewrite an earlier run began.
    Resume,
}

fn decide(
    schema: &Schema,
    recorded: &Settings,
    target: Option<&Settings>,
    wanted: &Settings,
    rewrite: bool,
) -> Result<Decision, Disagrees> {
    if let Some(target) = target {
        if !target.same(wanted) {
            return Err(Disagrees(format!(
                "a rewrite of schema {schema}'s personal data to {} is half done; run with \
                 those settings (and the same LINKRUNNER_PII_KEY) to finish it",
                target.describe()
            )));
        }
        return Ok(Decision::Resume);
    }
    if recorded.same(wanted) {
        return Ok(Decision::Ready);
    }
    if let Some(why) = cannot_rewrite(schema, recorded, wanted) {
        return Err(Disagrees(why));
    }
    if !rewrite {
        return Err(Disagrees(format!(
            "schema {schema} holds personal data stored with {}; this run asks for {}: add \
             --rewrite-personal-data to rewrite what is stored (it cannot be undone), or sync \
             into a new --schema",
            recorded.describe(),
            wanted.describe()
        )));
    }
    Ok(Decision::Start)
}

/// What a run with these settings would do to the stored personal data, for `--dry-run`,
/// reading only; Err when the run would be refused.
pub async fn preview(
    schema: &Schema,
    pool: &sqlx::PgPool,
    personal: &Protection,
    rewrite: bool,
) -> anyhow::Result<String> {
    let wanted = Settings::of(personal);
    let recorded_at = schema.sql("linkrunner.personal_data");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(recorded_at.as_ref())
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(format!(
            "personal data: nothing recorded yet; the run records {}\n",
            wanted.describe()
        ));
    }
    let mut conn = pool.acquire().await?;
    let row = recorded_row(schema, &mut conn).await?;
    let held: bool =
        sqlx::query_scalar(&schema.sql("SELECT EXISTS (SELECT FROM linkrunner.attributed_users)"))
            .fetch_one(&mut *conn)
            .await?;
    let (recorded, target) = match row {
        Some(row) => {
            let recorded = settings_of(row);
            (recorded.settings, recorded.target)
        }
        None if held => (Settings::keep(), None),
        None => {
            return Ok(format!(
                "personal data: nothing recorded yet; the run records {}\n",
                wanted.describe()
            ))
        }
    };
    let decision = decide(schema, &recorded, target.as_ref(), &wanted, rewrite)?;
    // Counted only for a rewrite, which reads every row anyway.
    let rows: i64 = match decision {
        Decision::Ready => 0,
        _ => {
            sqlx::query_scalar(&schema.sql("SELECT count(*) FROM linkrunner.attributed_users"))
                .fetch_one(&mut *conn)
                .await?
        }
    };
    Ok(match decision {
        Decision::Ready => format!(
            "personal data: stored with {}, as asked\n",
            wanted.describe()
        ),
        Decision::Start => format!(
            "personal data: the run would rewrite the {rows} stored rows from {} to {}\n",
            recorded.describe(),
            wanted.describe()
        ),
        Decision::Resume => format!(
            "personal data: the run would finish the rewrite to {} ({rows} stored rows)\n",
            wanted.describe()
        ),
    })
}

fn sorted(keys: &[String]) -> Vec<String> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

/// Why what is stored under `from` cannot be made what `to` would store; None when it can.
fn cannot_rewrite(schema: &Schema, from: &Settings, to: &Settings) -> Option<String> {
    let mix = format!(
        "schema {schema} holds personal data stored with {}; this run asks for {}",
        from.describe(),
        to.describe()
    );
    if to.mode() != Mode::Keep && from.key_check.is_some() && from.key_check != to.key_check {
        return Some(format!(
            "LINKRUNNER_PII_KEY is not the key schema {schema}'s personal data was stored \
             with: the same person would hash two ways; set the original key"
        ));
    }
    let loosens = match (from.mode(), to.mode()) {
        (_, Mode::Keep) | (Mode::Drop, Mode::Hash) => true,
        (Mode::Keep, _) => false,
        _ => !from.keys.iter().all(|k| to.keys.contains(k)),
    };
    loosens.then(|| {
        format!(
            "{mix}, which cannot be restored from what is stored: run with the recorded \
             settings, or sync into a new --schema"
        )
    })
}

/// The key check of a schema that stores values hashed, or is being rewritten to; None when
/// it stores none.
pub async fn hashes(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<Option<String>> {
    let check: Option<Option<String>> = sqlx::query_scalar(&schema.sql(
        "SELECT CASE WHEN mode = 'hash' THEN key_check
                     WHEN to_mode = 'hash' THEN to_key_check END
         FROM linkrunner.personal_data",
    ))
    .fetch_optional(conn)
    .await?;
    Ok(check.flatten())
}
