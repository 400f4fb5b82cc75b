//! The job on a hostile machine and with hostile settings: planted links and FIFOs beside the
//! metrics file, flag values at the edge of what a number or a duration holds, a database role
//! that may only read, a table of another shape in the way, a base URL with no API behind it,
//! and campaign names that would drive the terminal. Each ends with a clear line and the exit
//! code that says what to do, never a panic, and nothing already stored lost.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::hostile::{self, Hostile, Reply};
use crate::common::{bare_sync_command, count, database_url, output, sync_command};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const BIN: &str = env!("CARGO_BIN_EXE_linkrunner-sync");

/// A server with campaign `c1` (named `name`, created `created_at`) and one attributed user.
async fn api(name: &str, created_at: &str) -> Hostile {
    let campaign = serde_json::json!({
        "display_id": "c1",
        "name": name,
        "created_at": created_at,
        "update_at": created_at,
        "active": true,
        "attributed_users": 1,
        "store_listings": [],
    })
    .to_string();
    let users = vec![hostile::user("c1", "u1", "2026-11-02T10:00:00.000Z")];
    hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", std::slice::from_ref(&campaign), 1, 1),
        ),
        "/attributed-users" => Reply::json(200, hostile::page("users", &users, 1, 1)),
        _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
    })
    .await
}

async fn plain_api() -> Hostile {
    api("One", "2026-11-01T00:00:00.000Z").await
}

/// A sync of the test's database against `api` that reads from 2026-11-01.
fn sync(db: &PgConnectOptions, api: &Hostile) -> Command {
    let mut cmd = sync_command(&database_url(db), &api.url, "hostile-key");
    cmd.args(["--since", "2026-11-01T00:00:00Z"]);
    cmd
}

/// The command with its address space capped at 2 GiB: a run that tries to hold gigabytes dies
/// instead of taking the machine with it.
fn capped(mut cmd: Command) -> Command {
    let limit = libc::rlimit {
        rlim_cur: 2 << 30,
        rlim_max: 2 << 30,
    };
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code 2 and one line on stderr, naming `expected`, with no sign of a panic.
fn assert_refused(out: &Output, what: &str, expected: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
    assert_eq!(text.trim().lines().count(), 1, "{what}: {text}");
    assert!(
        text.contains(expected),
        "{what}: expected {expected:?} in {text}"
    );
    for sign in ["panicked", "internal error"] {
        assert!(!text.contains(sign), "{what}: {text}");
    }
}

async fn users(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM linkrunner.attributed_users").await
}

// --- The metrics file -------------------------------------------------------------------------

fn metrics_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lrs-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn sync_with_metrics(db: &PgConnectOptions, path: &Path) -> Output {
    let api = plain_api().await;
    let mut cmd = sync(db, &api);
    cmd.arg("--metrics-file").arg(path);
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "metrics trouble never fails the run: {out:?}"
    );
    out
}

#[sqlx::test]
async fn the_metrics_file_is_written_whole_and_readable(_: PgPoolOptions, db: PgConnectOptions) {
    let dir = metrics_dir("normal");
    let path = dir.join("linkrunner.prom");
    sync_with_metrics(&db, &path).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("linkrunner_sync_last_run_success{schema=\"linkrunner\"} 1\n"),
        "{text}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o044, 0o044, "the collector must read it: {mode:o}");
    // Written again over the first one, and no temporary file is left behind.
    sync_with_metrics(&db, &path).await;
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["linkrunner.prom"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test]
async fn a_link_planted_at_the_old_temp_name_is_not_followed(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let dir = metrics_dir("planted");
    let path = dir.join("linkrunner.prom");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    // The name the job used to write to before renaming.
    std::os::unix::fs::symlink(&victim, dir.join("linkrunner.prom.tmp")).unwrap();
    sync_with_metrics(&db, &path).await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("linkrunner_sync_last_run"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test]
async fn only_a_regular_file_at_the_metrics_path_is_replaced(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let dir = metrics_dir("kinds");
    let fifo = dir.join("fifo.prom");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let out = sync_with_metrics(&db, &fifo).await;
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
    assert!(stderr(&out).contains("is a FIFO"), "{}", stderr(&out));

    // A link at the path is left a link, and what it points at untouched.
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.join("link.prom");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = sync_with_metrics(&db, &link).await;
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );

    let sub = dir.join("dir.prom");
    std::fs::create_dir(&sub).unwrap();
    let out = sync_with_metrics(&db, &sub).await;
    assert!(sub.is_dir());
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Flags --------------------------------------------------------------------------------------

#[sqlx::test(migrations = false)]
async fn hostile_flag_values_exit_2_with_one_line(opts: PgPoolOptions, db: PgConnectOptions) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let api = plain_api().await;
    let url = database_url(&db);
    let sync_cases: &[(&[&str], &str)] = &[
        (&["--rps", "1e-20"], "--rps"),
        (&["--rps", "NaN"], "--rps"),
        (&["--rps", "inf"], "--rps"),
        (&["--rps", "1e400"], "--rps"),
        (&["--rps", "10001"], "--rps"),
        (&["--lookback", "999999999w"], "--lookback"),
        (&["--lookback", "9223372036854775807ms"], "--lookback"),
        (&["--lookback", "99999999999999999999d"], "--lookback"),
        (&["--full-scan-every", "999999999w"], "--full-scan-every"),
        (&["--timeout", "999999999w"], "--timeout"),
        (&["--timeout", "1ms"], "--timeout"),
        (&["--retry-delay", "999999999w"], "--retry-delay"),
        (&["--window", "1ms"], "--window"),
        (&["--window", "59s"], "--window"),
        (&["--window", "4294967295d"], "--window"),
        (&["--window", "613566756w"], "--window"),
        (&["--window", "1m", "--since", "2020-01-01"], "--since"),
        (&["--window", "1m", "--lookback", "365d"], "--lookback"),
        (&["--since", "0001-01-01"], "--since"),
        (&["--since", "1999-12-31T23:59:59Z"], "--since"),
        (&["--until", "1970-01-01"], "--until"),
        (&["--since", "+99999-01-01"], "--since"),
        (&["--concurrency", "18446744073709551615"], "--concurrency"),
        (&["--concurrency", "65"], "--concurrency"),
        (
            &["--memory-budget-mib", "4294967295"],
            "--memory-budget-mib",
        ),
        (&["--page-size", "4294967295"], "--page-size"),
        (
            &["--pages-per-scan", "18446744073709551615"],
            "--pages-per-scan",
        ),
        (&["--max-retries", "18446744073709551615"], "--max-retries"),
    ];
    for (args, expected) in sync_cases {
        // No flag of the table may be given twice: clap would refuse that instead.
        let mut cmd = bare_sync_command(&url, &api.url, "hostile-key");
        cmd.args(["--dry-run", "--no-progress"]).args(*args);
        assert_refused(&output(capped(cmd)).await, &format!("{args:?}"), expected);
    }
    let other_cases: &[(&[&str], &str)] = &[
        (&["status", "--max-lag", "999999999w"], "--max-lag"),
        (
            &["status", "--max-lag", "9223372036854775807ms"],
            "--max-lag",
        ),
        (&["status", "--runs=-1"], "--runs"),
        (&["status", "--runs", "9223372036854775807"], "--runs"),
        (&["demo", "--rps", "1e-20"], "--rps"),
        (&["demo", "--users", "18446744073709551615"], "--users"),
        (&["demo", "--campaigns", "0"], "--campaigns"),
    ];
    // The demo is in the binary only with the `demo` feature (scripts/test turns it on).
    let built = |args: &&[&str]| cfg!(feature = "demo") || args[0] != "demo";
    for (args, expected) in other_cases.iter().filter(|(args, _)| built(args)) {
        let mut cmd = Command::new(BIN);
        cmd.args(*args)
            .env("DATABASE_URL", &url)
            .env("LINKRUNNER_DEMO_DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        assert_refused(&output(capped(cmd)).await, &format!("{args:?}"), expected);
    }
    // Refused before anything was written: not even the schema.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'linkrunner'"
        )
        .await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn keys_too_short_or_inside_the_base_url_are_refused_in_words_that_read_as_written(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let url = database_url(&db);
    let base = "https://api.example/api/v1";
    let cases: &[(&str, &str, &[&str], &str)] = &[
        // One letter of the base URL: too short to be a key, not a key in the URL.
        (
            "a",
            base,
            &[],
            "LINKRUNNER_API_KEY is too short to be a Linkrunner server key (at least 6 bytes)",
        ),
        ("api", base, &[], "too short to be a Linkrunner server key"),
        // A personal-data key that is a word of its own refusal.
        (
            "hostile-key",
            base,
            &["--personal-data", "hash", "--pii-key", "short"],
            "LINKRUNNER_PII_KEY is shorter than 16 bytes",
        ),
        // The key in the URL, escaped or in the host, whose case the URL does not keep.
        (
            "sk_live_1234",
            "https://api.example/sk%5Flive%5f1234/api/v1",
            &[],
            "holds the API key",
        ),
        (
            "SK-LIVE-1234",
            "https://sk-live-1234.example/api/v1",
            &[],
            "holds the API key",
        ),
    ];
    for (key, base_url, args, expected) in cases {
        let mut cmd = bare_sync_command(&url, base_url, key);
        cmd.args(["--dry-run", "--no-progress"]).args(*args);
        let out = output(cmd).await;
        let what = format!("{key} {base_url} {args:?}");
        assert_refused(&out, &what, expected);
        assert!(
            !stderr(&out).contains("[redacted]"),
            "{what}: {}",
            stderr(&out)
        );
    }
}

#[sqlx::test]
async fn a_campaign_too_old_for_its_window_is_refused_before_any_plan(
    opts: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    // A year of one-minute windows is more than a plan may hold.
    let api = api("Old", "2025-11-01T00:00:00.000Z").await;
    let url = database_url(&db);
    for dry_run in [true, false] {
        let mut cmd = sync_command(&url, &api.url, "hostile-key");
        cmd.args(["--window", "1m"]);
        if dry_run {
            cmd.arg("--dry-run");
        }
        let out = output(capped(cmd)).await;
        assert_refused(&out, &format!("dry run {dry_run}"), "campaign c1");
        assert!(stderr(&out).contains("--window"), "{}", stderr(&out));
    }
    assert_eq!(users(&pool).await, 0);
}

// --- Permanent database and API problems --------------------------------------------------------

/// `db`'s URL, logging in as `role`.
fn as_role(db: &PgConnectOptions, role: &str) -> String {
    let mut url = url::Url::parse(&database_url(db)).unwrap();
    url.set_username(role).unwrap();
    url.to_string()
}

#[sqlx::test(migrations = false)]
async fn a_role_that_may_not_write_exits_2_and_loses_nothing(
    opts: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let api = plain_api().await;
    let out = output(sync(&db, &api)).await;
    assert!(out.status.success(), "{out:?}");
    let database = db.get_database().unwrap();
    // Roles belong to the cluster, so each has a name of its own and is dropped after.
    let grants = [
        (
            "reader",
            "GRANT SELECT ON ALL TABLES IN SCHEMA linkrunner TO {role}",
        ),
        (
            "ledger",
            "GRANT SELECT ON ALL TABLES IN SCHEMA linkrunner TO {role}; \
             GRANT INSERT, UPDATE ON linkrunner.sync_runs TO {role}",
        ),
    ];
    for (kind, grant) in grants {
        let role = format!("lrs_{kind}_{:x}", {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            database.hash(&mut h);
            h.finish()
        });
        let setup = format!(
            "CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE \"{database}\" TO {role}; \
             GRANT USAGE ON SCHEMA linkrunner TO {role}; {}",
            grant.replace("{role}", &role)
        );
        sqlx::raw_sql(&setup).execute(&pool).await.unwrap();
        let (runs, rows) = (
            count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await,
            users(&pool).await,
        );
        let mut cmd = sync_command(&as_role(&db, &role), &api.url, "hostile-key");
        cmd.args(["--since", "2026-11-01T00:00:00Z", "--rescan"]);
        let out = output(cmd).await;
        let cleanup = format!("DROP OWNED BY {role}; DROP ROLE {role}");
        sqlx::raw_sql(&cleanup).execute(&pool).await.unwrap();
        assert_refused(&out, kind, "lacks privileges");
        assert_eq!(users(&pool).await, rows, "{kind}");
        let recorded = count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await;
        assert!(recorded - runs <= 1, "{kind}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_table_of_another_shape_in_the_way_exits_2_and_is_left_alone(
    opts: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    sqlx::raw_sql(
        "CREATE SCHEMA linkrunner;
         CREATE TABLE linkrunner.campaigns (id int PRIMARY KEY, note text);
         INSERT INTO linkrunner.campaigns VALUES (1, 'mine');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let api = plain_api().await;
    assert_refused(
        &output(sync(&db, &api)).await,
        "before migrating",
        "another shape",
    );
    let note: String = sqlx::query_scalar("SELECT note FROM linkrunner.campaigns WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(note, "mine");
}

#[sqlx::test]
async fn a_table_replaced_after_migrating_exits_2_and_loses_nothing(
    opts: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let api = plain_api().await;
    let out = output(sync(&db, &api)).await;
    assert!(out.status.success(), "{out:?}");
    sqlx::raw_sql(
        "DROP TABLE linkrunner.campaigns CASCADE;
         CREATE TABLE linkrunner.campaigns (display_id text, note text);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut cmd = sync(&db, &api);
    cmd.arg("--rescan");
    assert_refused(&output(cmd).await, "after migrating", "another shape");
    assert_eq!(users(&pool).await, 1);
}

#[sqlx::test]
async fn a_base_url_with_no_api_behind_it_exits_2(opts: PgPoolOptions, db: PgConnectOptions) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let nothing = hostile::serve(|_| Reply::json(404, r#"{"message":"Cannot GET"}"#)).await;
    for dry_run in [false, true] {
        let mut cmd = sync(&db, &nothing);
        if dry_run {
            cmd.arg("--dry-run");
        }
        let out = output(cmd).await;
        assert_refused(
            &out,
            &format!("dry run {dry_run}"),
            "check LINKRUNNER_BASE_URL",
        );
    }
    assert_eq!(users(&pool).await, 0);
}

// --- Terminal output ----------------------------------------------------------------------------

#[sqlx::test]
async fn status_escapes_control_characters_from_the_api(opts: PgPoolOptions, db: PgConnectOptions) {
    let pool = opts.connect_with(db.clone()).await.unwrap();
    let api = api(
        "Sale\u{1b}[2J\u{1b}]0;owned\u{7}\rFAKE OK\u{9b}",
        "2026-11-01T00:00:00.000Z",
    )
    .await;
    let url = database_url(&db);
    let out = output(sync(&db, &api)).await;
    assert!(out.status.success(), "{out:?}");
    sqlx::query("UPDATE linkrunner.sync_runs SET error = $1")
        .bind("server said \u{1b}[31mno\u{7}\r")
        .execute(&pool)
        .await
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["status", "--max-lag", "365d"])
        .env("DATABASE_URL", &url);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "raw control characters {raw:?} in:\n{text}");
    assert!(text.contains("Sale\\u{1b}[2J"), "{text}");
    assert!(
        text.contains("server said \\u{1b}[31mno\\u{7}\\r"),
        "{text}"
    );
    // JSON carries the name exactly, escaped by JSON's own rules.
    let mut cmd = Command::new(BIN);
    cmd.args(["status", "--format", "json", "--max-lag", "365d"])
        .env("DATABASE_URL", &url);
    let json: serde_json::Value = serde_json::from_slice(&output(cmd).await.stdout).unwrap();
    assert_eq!(
        json["campaigns"][0]["name"],
        "Sale\u{1b}[2J\u{1b}]0;owned\u{7}\rFAKE OK\u{9b}"
    );
}
