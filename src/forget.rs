//! `linkrunner-sync forget`: reads who to erase from the flags and a file, checks it all
//! before anything is deleted, erases them under the run lock, and says what went.

use secrecy::SecretString;

use crate::cli::ForgetArgs;
use crate::db::forget::{Erased, People};
use crate::db::{self, RunLock, Schema};
use crate::error::Failure;
use crate::personal::{Mode, Protection, DEFAULT_KEYS};

/// Who to erase, from the flags and `--file`; an error names what is wrong, never the value
/// (it is personal data).
pub fn people(args: &ForgetArgs) -> Result<People, String> {
    let mut people = People {
        user_ids: args.user_ids.clone(),
        emails: args.emails.clone(),
        phones: args.phones.clone(),
    };
    if let Some(path) = &args.file {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("--file {}: {e}", path.display()))?;
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
        return Err("forget needs at least one --user-id, --email, --phone or --file".into());
    }
    Ok(people)
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
         suppressed: {} added ({} in all); later runs drop their rows\n",
        n(len(&people.user_ids), "user id", "user ids"),
        n(len(&people.emails), "email", "emails"),
        n(len(&people.phones), "phone number", "phone numbers"),
        n(erased.user_ids_found, "user id", "user ids"),
        n(erased.attributed_users, "row", "rows"),
        n(erased.rejected_rows, "row", "rows"),
        n(erased.attribution_results, "row", "rows"),
        n(erased.suppressed_new, "identifier", "identifiers"),
        erased.suppressed_total,
    )
}
