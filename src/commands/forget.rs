//! `linkrunner-sync forget`: reads who to erase from the flags and a file, checks it all
//! before anything is deleted, erases them under the run lock, and says what went.

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::cli::ForgetArgs;
use crate::config;
use crate::db::forget::{Erased, People};
use crate::db::{self, RunLock, Schema};
use crate::error::Failure;
use crate::model::personal::{Mode, Protection, DEFAULT_KEYS};

/// Erases the people named, under the run lock, in one transaction.
pub(super) async fn run_command(args: ForgetArgs) -> Result<(), Failure> {
    let people = people(&args).map_err(Failure::Config)?;
    let schema = args.db.schema.clone();
    let options = database(&args).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    let lock = db::try_lock(&pool, &schema, CancellationToken::new())
        .await?
        .ok_or(Failure::Locked)?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let backend = backend(&lock).await?;
    // The erasure is one transaction: a signal cancels its statement, so that it rolls back
    // and the lock goes at once rather than when a wait for another lock ends.
    let result = tokio::select! {
        result = run(&schema, &lock, &people, args.pii_key) => result,
        () = stop.cancelled() => {
            cancel(&pool, backend).await;
            Err(Failure::Transient(anyhow::anyhow!(
                "forget stopped by a signal before it confirmed the erasure; run it again \
                 (what was erased stays erased)"
            )))
        }
    };
    lock.release().await;
    print!("{}", result?);
    Ok(())
}

/// Largest `--file` read.
pub const MAX_FILE_BYTES: u64 = crate::bounds::FORGET_FILE_BYTES;
/// Most lines of `--file`.
pub const MAX_FILE_LINES: usize = crate::bounds::FORGET_FILE_LINES;

/// Who to erase, from the flags and `--file`; an error names what is wrong, never the value
/// (it is personal data).
pub fn people(args: &ForgetArgs) -> Result<People, String> {
    let mut people = People {
        user_ids: args.user_ids.clone(),
        emails: args.emails.clone(),
        phones: args.phones.clone(),
    };
    if let Some(path) = &args.file {
        let text = read_file(path).map_err(|e| format!("--file {}: {e}", path.display()))?;
        // A BOM is how some editors start a UTF-8 file.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let list = match line.split_once('=') {
                Some(("user_id", value)) => (&mut people.user_ids, value),
                Some(("email", value)) => (&mut people.emails, value),
                Some(("phone", value)) => (&mut people.phones, value),
                _ => {
                    return Err(format!(
                        "--file {} line {}: expected user_id=…, email=… or phone=…",
                        path.display(),
                        n + 1
                    ))
                }
            };
            list.0.push(list.1.to_owned());
        }
    }
    if people.user_ids.iter().any(|v| v.trim().is_empty()) {
        return Err("a user id to forget is empty".into());
    }
    if people.emails.iter().any(|v| !v.contains('@')) {
        return Err("an email to forget holds no @".into());
    }
    if people
        .phones
        .iter()
        .any(|v| !v.chars().any(|c| c.is_ascii_digit()))
    {
        return Err("a phone number to forget holds no digit".into());
    }
    if people.user_ids.is_empty() && people.emails.is_empty() && people.phones.is_empty() {
        return Err(match &args.file {
            Some(path) => format!(
                "--file {} holds no identifiers (lines user_id=…, email=… or phone=…)",
                path.display()
            ),
            None => "forget needs at least one --user-id, --email, --phone or --file".into(),
        });
    }
    Ok(people)
}

/// The text of a regular file within the bounds: a FIFO, a device or a directory is refused
/// before it is opened (opening a FIFO waits for a writer), and reading stops past the bound.
fn read_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let regular = |meta: &std::fs::Metadata| {
        if meta.is_file() {
            Ok(())
        } else {
            Err("not a regular file".to_owned())
        }
    };
    regular(&std::fs::metadata(path).map_err(|e| e.to_string())?)?;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    regular(&file.metadata().map_err(|e| e.to_string())?)?;
    let too_large = || format!("larger than {} MiB", MAX_FILE_BYTES >> 20);
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    if text.lines().nth(MAX_FILE_LINES).is_some() {
        return Err(format!("more than {MAX_FILE_LINES} lines"));
    }
    Ok(text)
}

/// The database of `forget`, whose statements wait at most `--lock-timeout` for a lock.
pub fn database(args: &ForgetArgs) -> Result<db::Target, String> {
    config::waiting_database(&args.db, args.lock_timeout)
}

/// Cancels `stop` at the first SIGTERM or SIGINT.
pub async fn stop_on_signal(stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    stop.cancel();
}

/// The server process of the lock's session.
pub async fn backend(lock: &RunLock) -> Result<i32, Failure> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *lock.session().await)
        .await
        .map_err(|e| Failure::database(e, "reading the session"))
}

/// Cancels the statement `backend` runs, from another session; its transaction then rolls
/// back. Bounded: if the cancel cannot be sent, ending the process ends the session too.
pub async fn cancel(pool: &sqlx::PgPool, backend: i32) {
    let cancel = sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(backend)
        .execute(pool);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), cancel).await;
}

/// Erases `people` from the schema on the lock's session and describes what went.
pub async fn run(
    schema: &Schema,
    lock: &RunLock,
    people: &People,
    pii_key: Option<SecretString>,
) -> Result<String, Failure> {
    let mut conn = lock.session().await;
    db::prepare(&mut conn, schema).await?;
    let hashing = db::personal::hashes(schema, &mut conn)
        .await
        .map_err(|e| Failure::database(e, "reading the personal-data mode"))?;
    let by_value = !people.emails.is_empty() || !people.phones.is_empty();
    let hashes = match hashing {
        Some(check) if by_value => {
            let keys = DEFAULT_KEYS.map(String::from).to_vec();
            let key = Protection::new(Mode::Hash, keys, pii_key).map_err(|_| {
                Failure::Config(format!(
                    "schema {schema} stores emails and phones hashed: forget needs \
                     LINKRUNNER_PII_KEY to find them"
                ))
            })?;
            if key.key_check() != Some(check) {
                return Err(Failure::Config(format!(
                    "LINKRUNNER_PII_KEY is not the key schema {schema}'s personal data was \
                     hashed with"
                )));
            }
            Some(key)
        }
        _ => None,
    };
    let erased = db::forget::forget(schema, &mut conn, people, hashes.as_ref())
        .await
        .map_err(|e| Failure::database(e, "erasing"))?;
    Ok(render(people, &erased))
}

fn render(people: &People, erased: &Erased) -> String {
    let n = |count: i64, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    let len = |list: &Vec<String>| list.len() as i64;
    format!(
        "forgot {}, {} and {} ({} more found by them)\n\
         attributed_users: {} deleted\n\
         rejected_rows: {} deleted\n\
         attribution_results: {} deleted\n\
         webhook_events: {} deleted\n\
         suppressed: {} added ({} in all); later runs drop their rows\n",
        n(len(&people.user_ids), "user id", "user ids"),
        n(len(&people.emails), "email", "emails"),
        n(len(&people.phones), "phone number", "phone numbers"),
        n(erased.user_ids_found, "user id", "user ids"),
        n(erased.attributed_users, "row", "rows"),
        n(erased.rejected_rows, "row", "rows"),
        n(erased.attribution_results, "row", "rows"),
        n(erased.webhook_events, "event", "events"),
        n(erased.suppressed_new, "identifier", "identifiers"),
        erased.suppressed_total,
    )
}
