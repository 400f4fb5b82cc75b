//! `--personal-data`: canary values sent through the SDK are searched for in every table of the
//! schema and in everything the job prints, in each mode.

use crate::common;

use std::process::Output;

use crate::common::*;
use linkrunner_sim::{SimConfig, SimServer, Simulator};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const PII_KEY: &str = "test-pii-key-of-32-bytes-length!";

/// Each canary as the app sends it, and pieces of it as sent or normalised, lower-cased.
const CANARIES: [(&str, &str, &[&str]); 4] = [
    ("name", "  Zqxname   Canary ", &["zqxname"]),
    ("email", " Zqx.Canary@Example.NET ", &["zqx.canary"]),
    ("phone", "+1 (555) 010-4242", &["010-4242", "0104242"]),
    ("address", "42 Zqxaddress Street", &["zqxaddress"]),
];

/// A simulator whose first campaign got three signups carrying every canary: one plain, one
/// with neither a user id nor a device id (keyed by the hash of its content), and one with a
/// NUL in another key, which the job sets aside in rejected_rows.
async fn project_with_canaries(seed: u64) -> (Simulator, SimServer) {
    project_of(SimConfig::small(seed)).await
}

async fn project_of(config: SimConfig) -> (Simulator, SimServer) {
    let (sim, server) = start(config).await;
    let campaign = sim.campaigns()[0].clone();
    anonymous_signup(&server, &campaign["link"]).await;
    let mut user_data = json!({"id": "u-canary"});
    for (key, value, _) in CANARIES {
        user_data[key] = json!(value);
    }
    sdk_signup_as(
        &server,
        Some(&campaign["link"]),
        "install-canary",
        user_data.clone(),
    )
    .await;
    user_data["id"] = json!("u-canary-nul");
    user_data["note"] = json!("a\u{0}b");
    sdk_signup_as(&server, Some(&campaign["link"]), "install-nul", user_data).await;
    (sim, server)
}

/// A signup on an install that sent no device ids, by a user with no id.
async fn anonymous_signup(server: &SimServer, link: &serde_json::Value) {
    let http = reqwest::Client::new();
    let base = server.client_url();
    let init = json!({"token": "sim-token", "platform": "ANDROID",
        "install_instance_id": "install-anonymous", "device_data": {"brand": "google"},
        "link": link});
    let sent = http.post(format!("{base}/init")).json(&init).send().await;
    assert_eq!(sent.unwrap().status(), 202);
    let mut user_data = json!({});
    for (key, value, _) in CANARIES {
        user_data[key] = json!(value);
    }
    let trigger = json!({"token": "sim-token", "platform": "ANDROID",
        "install_instance_id": "install-anonymous", "user_data": user_data});
    let sent = http
        .post(format!("{base}/trigger"))
        .json(&trigger)
        .send()
        .await;
    assert!(sent.unwrap().status().is_success());
}

fn sync(db: &PgConnectOptions, server: &SimServer, mode: &str) -> std::process::Command {
    sync_keys(db, server, mode, "name,email,phone,address")
}

fn sync_keys(
    db: &PgConnectOptions,
    server: &SimServer,
    mode: &str,
    keys: &str,
) -> std::process::Command {
    let mut cmd = sync_command(&database_url(db), &server.base_url(), "sim-key");
    cmd.args(["--personal-data", mode])
        .args(["--personal-data-keys", keys])
        .env("LINKRUNNER_PII_KEY", PII_KEY)
        .env("RUST_LOG", "debug");
    cmd
}

/// Every row of every table of the schema, as text.
async fn everything_stored(pool: &PgPool) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'linkrunner' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() >= 8, "{tables:?}");
    let mut all = String::new();
    for table in tables {
        let rows: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM linkrunner.\"{table}\" t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        all.push_str(&rows.unwrap_or_default());
        all.push('\n');
    }
    all.to_lowercase()
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_lowercase()
}

/// The canaries found in `text`.
fn canaries_in(text: &str) -> Vec<&'static str> {
    CANARIES
        .iter()
        .filter(|(_, _, pieces)| pieces.iter().any(|p| text.contains(p)))
        .map(|(key, _, _)| *key)
        .collect()
}

async fn assert_nothing_personal_stored(pool: &PgPool) {
    let found = canaries_in(&everything_stored(pool).await);
    assert!(found.is_empty(), "stored: {found:?}");
}

fn assert_nothing_personal_printed(out: &Output) {
    let found = canaries_in(&printed(out));
    assert!(found.is_empty(), "printed: {found:?}");
}

/// The HMAC-SHA-256 of `text` under the test key, by the openssl command: a second
/// implementation to hold the job's to.
fn openssl_hmac(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", PII_KEY, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the openssl command (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

async fn rows_per_campaign(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT campaign_display_id, count(*) FROM linkrunner.attributed_users
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn expected_rows(sim: &Simulator) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = sim
        .campaigns()
        .iter()
        .map(|c| {
            let id = c["display_id"].as_str().unwrap().to_string();
            // The row with a NUL is set aside, not stored.
            let nul = sim
                .attributed_users(&id)
                .iter()
                .filter(|r| r["user_data"]["id"] == "u-canary-nul")
                .count();
            let n = (sim.attributed_users(&id).len() - nul) as i64;
            (id, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    counts
}

#[sqlx::test]
async fn keep_stores_the_canaries_which_shows_the_search_finds_them(pool: PgPool) {
    let (_sim, server) = project_with_canaries(81).await;
    let db = pool.connect_options();
    let dir = common::daemons::scratch_dir("metrics");
    let metrics = dir.join("sync.prom");
    let mut cmd = sync(&db, &server, "keep");
    cmd.arg("--metrics-file").arg(&metrics);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stored = everything_stored(&pool).await;
    assert_eq!(canaries_in(&stored), ["name", "email", "phone", "address"]);
    // Output never carries them, whatever the mode: logs, the metrics, status.
    assert_nothing_personal_printed(&out);
    let exported = std::fs::read_to_string(&metrics).unwrap().to_lowercase();
    assert!(exported.contains("linkrunner_sync"), "{exported}");
    assert_eq!(canaries_in(&exported), Vec::<&str>::new());
    for format in ["text", "json"] {
        let mut status = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
        status
            .args(["status", "--format", format, "--max-lag", "365d"])
            .env("DATABASE_URL", database_url(&db));
        let out = output(status).await;
        assert!(out.status.success(), "{out:?}");
        assert_nothing_personal_printed(&out);
    }
}

#[sqlx::test]
async fn hash_stores_keyed_hashes_of_the_normal_form_and_nothing_plain(pool: PgPool) {
    let (sim, server) = project_with_canaries(82).await;
    let db = pool.connect_options();
    let out = output(sync(&db, &server, "hash")).await;
    // The row with a NUL is set aside; the run says so with exit code 4.
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_nothing_personal_stored(&pool).await;
    assert_nothing_personal_printed(&out);
    assert!(!printed(&out).contains(&PII_KEY.to_lowercase()));
    assert_eq!(rows_per_campaign(&pool).await, expected_rows(&sim));

    let (name, email, phone): (String, String, String) = sqlx::query_as(
        "SELECT name, email, phone FROM linkrunner.users WHERE user_id = 'u-canary'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(name, openssl_hmac("zqxname canary"));
    assert_eq!(email, openssl_hmac("zqx.canary@example.net"));
    assert_eq!(phone, openssl_hmac("+15550104242"));
    let address: String = sqlx::query_scalar(
        "SELECT user_data->>'address' FROM linkrunner.attributed_users WHERE user_id = 'u-canary'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(address, openssl_hmac("42 zqxaddress street"));
    let rejected = count(&pool, "SELECT count(*) FROM linkrunner.rejected_rows").await;
    assert_eq!(rejected, 1);

    // Read again, every row hashes as before: nothing new, nothing changed.
    let mut again = sync(&db, &server, "hash");
    again
        .args(["--since", "2020-01-01", "--rescan"])
        .env("RUST_LOG", "warn");
    let out = output(again).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let (received, inserted, updated): (i64, i64, i64) = sqlx::query_as(
        "SELECT rows_received, rows_inserted, rows_updated FROM linkrunner.sync_runs
         ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let stored: i64 = expected_rows(&sim).iter().map(|(_, n)| n).sum();
    assert_eq!(
        received,
        stored + 1,
        "every row read again, and the one set aside"
    );
    assert_eq!((inserted, updated), (0, 0));
    assert_eq!(rows_per_campaign(&pool).await, expected_rows(&sim));
}

#[sqlx::test]
async fn drop_stores_every_row_without_its_personal_values(pool: PgPool) {
    let (sim, server) = project_with_canaries(83).await;
    let db = pool.connect_options();
    let out = output(sync(&db, &server, "drop")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_nothing_personal_stored(&pool).await;
    assert_nothing_personal_printed(&out);
    assert_eq!(rows_per_campaign(&pool).await, expected_rows(&sim));
    let personal = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users
         WHERE user_name IS NOT NULL OR user_email IS NOT NULL OR user_phone IS NOT NULL
            OR user_data ? 'address'",
    )
    .await;
    assert_eq!(personal, 0);
    // The analysts' views read the same rows.
    let total: i64 = expected_rows(&sim).iter().map(|(_, n)| n).sum();
    let clean = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users_clean",
    )
    .await;
    assert_eq!(clean, total);
    let named = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users_clean
         WHERE user_name IS NOT NULL OR user_email IS NOT NULL OR user_phone IS NOT NULL",
    )
    .await;
    assert_eq!(named, 0);
    // The rest of user_data stays.
    let kept = count(
        &pool,
        "SELECT count(*) FROM linkrunner.users WHERE user_id = 'u-canary'",
    )
    .await;
    assert_eq!(kept, 1);
}

#[sqlx::test(migrations = false)]
async fn a_run_that_disagrees_with_the_recorded_mode_is_refused_and_changes_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (_sim, server) = project_with_canaries(84).await;
    let out = output(sync(&db, &server, "hash")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let before = everything_stored(&pool).await;
    let runs = count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await;

    let mut other_key = sync(&db, &server, "hash");
    other_key.env("LINKRUNNER_PII_KEY", "another-key-of-enough-length");
    let other_keys = {
        let mut cmd = sync_command(&database_url(&db), &server.base_url(), "sim-key");
        cmd.args([
            "--personal-data",
            "hash",
            "--personal-data-keys",
            "name,email,phone",
        ])
        .env("LINKRUNNER_PII_KEY", PII_KEY);
        cmd
    };
    let cases = [
        (sync(&db, &server, "keep"), "--personal-data hash"),
        (sync(&db, &server, "drop"), "--personal-data hash"),
        (other_key, "not the key"),
        (other_keys, "--personal-data-keys address,email,name,phone"),
    ];
    for (mut cmd, says) in cases {
        cmd.env("RUST_LOG", "warn");
        let out = output(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("another-key"), "{stderr}");
    }
    assert_eq!(everything_stored(&pool).await, before);
    let after = count(&pool, "SELECT count(*) FROM linkrunner.sync_runs").await;
    assert_eq!(after, runs, "a refused run is not in the ledger");

    // Without LINKRUNNER_PII_KEY, hash is refused before anything.
    let mut keyless = sync(&db, &server, "hash");
    keyless.env_remove("LINKRUNNER_PII_KEY");
    let out = output(keyless).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LINKRUNNER_PII_KEY"));
}

#[sqlx::test]
async fn rows_stored_before_the_mode_was_recorded_count_as_kept(pool: PgPool) {
    let (_sim, server) = project_with_canaries(85).await;
    let db = pool.connect_options();
    let out = output(sync(&db, &server, "keep")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // As an earlier version left it: rows, and no record of the mode.
    sqlx::query("DELETE FROM linkrunner.personal_data")
        .execute(&pool)
        .await
        .unwrap();
    let out = output(sync(&db, &server, "drop")).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--personal-data keep"));
    let out = output(sync(&db, &server, "keep")).await;
    assert!(out.status.success(), "{out:?}");
}

/// Every stored email, phone and name: each is a 64-digit hex hash or NULL.
async fn all_hashed(pool: &PgPool) -> bool {
    count(
        pool,
        "SELECT count(*) FROM linkrunner.attributed_users
         WHERE NOT (COALESCE(user_name, '') ~ '^([0-9a-f]{64})?$'
                AND COALESCE(user_email, '') ~ '^([0-9a-f]{64})?$'
                AND COALESCE(user_phone, '') ~ '^([0-9a-f]{64})?$')",
    )
    .await
        == 0
}

async fn stored_keys(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT row_key FROM linkrunner.attributed_users
         ORDER BY campaign_display_id, attributed_at, row_key",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_rewrite_killed_half_way_is_finished_by_the_next_run_and_hashes_each_value_once(
    pool: PgPool,
) {
    let (sim, server) = project_of(SimConfig {
        users: 6000,
        ..SimConfig::small(86)
    })
    .await;
    let db = pool.connect_options();
    let out = output(sync(&db, &server, "keep")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let plain_emails = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users WHERE user_email IS NOT NULL",
    )
    .await;
    assert!(plain_emails > 4000, "{plain_emails}");
    let keys_before = stored_keys(&pool).await;
    assert!(keys_before.iter().any(|k| k.starts_with("h:")));

    // Without the flag, stricter settings are refused: a rewrite cannot be undone.
    let mut cmd = sync(&db, &server, "hash");
    cmd.env("RUST_LOG", "warn");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rewrite-personal-data"));

    // A row past the first batch is held by another session, so the rewrite stops there with
    // its first batch committed; then the run is killed.
    let (campaign, at, key): (String, chrono::DateTime<chrono::Utc>, String) = sqlx::query_as(
        "SELECT campaign_display_id, attributed_at, row_key FROM linkrunner.attributed_users
         ORDER BY campaign_display_id, attributed_at OFFSET 3000 LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut holder = pool.begin().await.unwrap();
    // Only that row: FOR UPDATE with OFFSET would lock every row skipped too.
    sqlx::query(
        "SELECT 1 FROM linkrunner.attributed_users
         WHERE campaign_display_id = $1 AND attributed_at = $2 AND row_key = $3 FOR UPDATE",
    )
    .bind(campaign)
    .bind(at)
    .bind(key)
    .execute(&mut *holder)
    .await
    .unwrap();
    let mut cmd = sync(&db, &server, "hash");
    cmd.arg("--rewrite-personal-data")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let rewritten = wait_for("a first batch", std::time::Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let n: Option<i64> = sqlx::query_scalar(
                "SELECT rows_rewritten FROM linkrunner.personal_data WHERE to_mode = 'hash'",
            )
            .fetch_optional(&pool)
            .await
            .unwrap();
            n.filter(|n| *n > 0)
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    holder.rollback().await.unwrap();
    assert!(rewritten < plain_emails, "{rewritten} of {plain_emails}");
    assert!(!all_hashed(&pool).await, "the rewrite was not cut short");

    // status says so.
    let mut status = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    status
        .args(["status", "--max-lag", "365d"])
        .env("DATABASE_URL", database_url(&db));
    let out = output(status).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("personal data: keep"), "{said}");
    assert!(said.contains("a rewrite to hash is half done"), "{said}");

    // Half done: the old settings are refused, naming what finishes it.
    let mut cmd = sync(&db, &server, "keep");
    cmd.env("RUST_LOG", "warn");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("half done"));

    // The next run finishes it, with no flag: the rewrite was asked for already.
    let out = output(sync(&db, &server, "hash")).await;
    assert!(out.status.success(), "{out:?}");
    assert!(printed(&out).contains("stored personal data rewritten"));
    assert!(all_hashed(&pool).await);
    assert_nothing_personal_stored(&pool).await;
    // Each value hashed once: the canary's email is the hash of its normal form.
    let email: String = sqlx::query_scalar(
        "SELECT user_email FROM linkrunner.attributed_users WHERE user_id = 'u-canary'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(email, openssl_hmac("zqx.canary@example.net"));
    let (rows, rejected): (i64, i64) = sqlx::query_as(
        "SELECT rows_rewritten, rejected_rewritten FROM linkrunner.personal_data_changes",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(rows >= plain_emails, "{rows} < {plain_emails}");
    assert_eq!(rejected, 1);

    // Read again from the start, every row keeps its key: none doubled, none lost.
    let keys_after = stored_keys(&pool).await;
    assert_eq!(keys_after.len(), keys_before.len());
    assert!(keys_after.iter().all(|k| !k.starts_with("h:")));
    let mut again = sync(&db, &server, "hash");
    again.args(["--since", "2020-01-01", "--rescan"]);
    let out = output(again).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(stored_keys(&pool).await, keys_after);
    assert_eq!(rows_per_campaign(&pool).await, expected_rows(&sim));
    let (inserted, updated): (i64, i64) = sqlx::query_as(
        "SELECT rows_inserted, rows_updated FROM linkrunner.sync_runs
         ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((inserted, updated), (0, 0));
}

#[sqlx::test]
async fn hashed_rows_are_rewritten_to_dropped_and_more_keys_join_later(pool: PgPool) {
    let (sim, server) = project_with_canaries(87).await;
    let db = pool.connect_options();
    let out = output(sync_keys(&db, &server, "hash", "name,email")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let phones = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users WHERE user_phone LIKE '+%'",
    )
    .await;
    assert!(phones > 0);

    // One more key under hash: only the new key's values are hashed.
    let mut more = sync(&db, &server, "hash");
    more.arg("--rewrite-personal-data");
    let out = output(more).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(all_hashed(&pool).await);
    let email: String = sqlx::query_scalar(
        "SELECT user_email FROM linkrunner.attributed_users WHERE user_id = 'u-canary'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(email, openssl_hmac("zqx.canary@example.net"));

    let mut dropped = sync(&db, &server, "drop");
    dropped.arg("--rewrite-personal-data");
    let out = output(dropped).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let personal = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users
         WHERE user_name IS NOT NULL OR user_email IS NOT NULL OR user_phone IS NOT NULL
            OR user_data ? 'address'",
    )
    .await;
    assert_eq!(personal, 0);
    assert_eq!(rows_per_campaign(&pool).await, expected_rows(&sim));
    let changes = count(
        &pool,
        "SELECT count(*) FROM linkrunner.personal_data_changes",
    )
    .await;
    assert_eq!(changes, 2);
    // Back to hash or keep cannot be done from what is stored.
    for mode in ["hash", "keep"] {
        let mut back = sync(&db, &server, mode);
        back.args(["--rewrite-personal-data"])
            .env("RUST_LOG", "warn");
        let out = output(back).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be restored"));
    }
}

fn forget(db: &PgConnectOptions, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    cmd.arg("forget")
        .args(args)
        .env("DATABASE_URL", database_url(db))
        .env("RUST_LOG", "warn");
    cmd
}

async fn ledger_forgotten(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT rows_forgotten FROM linkrunner.sync_runs ORDER BY started_at DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn forget_erases_a_person_everywhere_and_a_rescan_stores_nothing_of_them(pool: PgPool) {
    let (sim, server) = project_with_canaries(88).await;
    let db = pool.connect_options();
    let mut first = sync(&db, &server, "keep");
    first.arg("--attribution-details");
    let out = output(first).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(canaries_in(&everything_stored(&pool).await).len(), 4);
    let looked_up = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attribution_results
         WHERE lookup_kind = 'user_id' AND lookup_value = 'u-canary'",
    )
    .await;
    assert_eq!(looked_up, 1);

    // Named by email alone, in another spelling, from a file.
    let dir = common::daemons::scratch_dir("forget");
    let file = dir.join("people.txt");
    std::fs::write(
        &file,
        "# erasure requests\n\nemail= ZQX.Canary@example.net\n",
    )
    .unwrap();
    let out = output(forget(&db, &["--file", file.to_str().unwrap()])).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("attributed_users: 2 rows deleted"), "{said}");
    assert!(said.contains("rejected_rows: 1 row deleted"), "{said}");
    assert!(
        said.contains("attribution_results: 1 row deleted"),
        "{said}"
    );
    assert!(said.contains("(1 user id more found by them)"), "{said}");
    assert_nothing_personal_printed(&out);
    assert_nothing_personal_stored(&pool).await;
    let places = count(&pool, "SELECT count(*) FROM linkrunner.forgotten_rows").await;
    assert_eq!(places, 2);

    // Read again from the start: nothing of the person is stored, and the run counts what it
    // dropped.
    let mut again = sync(&db, &server, "keep");
    again.args(["--since", "2020-01-01", "--rescan"]);
    let out = output(again).await;
    assert!(out.status.success(), "{out:?}");
    assert_nothing_personal_stored(&pool).await;
    assert_eq!(ledger_forgotten(&pool).await, 3);
    let mut expected = expected_rows(&sim);
    let first_campaign = sim.campaigns()[0]["display_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (campaign, n) in &mut expected {
        if *campaign == first_campaign {
            *n -= 2;
        }
    }
    expected.retain(|(_, n)| *n > 0);
    assert_eq!(rows_per_campaign(&pool).await, expected);

    // Twice is once.
    let out = output(forget(&db, &["--email", "zqx.canary@example.net"])).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("attributed_users: 0 rows deleted"), "{said}");
    assert!(said.contains("suppressed: 0 identifiers added"), "{said}");
}

#[sqlx::test]
async fn forget_checks_everything_before_it_deletes_anything(pool: PgPool) {
    let (_sim, server) = project_with_canaries(89).await;
    let db = pool.connect_options();
    let out = output(sync(&db, &server, "hash")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let before = everything_stored(&pool).await;
    let dir = common::daemons::scratch_dir("forget");
    let bad_file = dir.join("bad.txt");
    std::fs::write(&bad_file, "email=zqx.canary@example.net\nzqx-someone\n").unwrap();
    let bad_file = bad_file.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&[], "at least one"),
        (&["--email", "zqx-no-at"], "no @"),
        (&["--phone", "zqx"], "no digit"),
        (&["--file", bad_file], "line 2"),
        // Hashed emails cannot be found without the key.
        (&["--email", "zqx.canary@example.net"], "LINKRUNNER_PII_KEY"),
    ];
    for (args, says) in cases {
        let out = output(forget(&db, args)).await;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.to_lowercase().contains("zqx"), "{stderr}");
    }
    let mut wrong_key = forget(&db, &["--email", "zqx.canary@example.net"]);
    wrong_key.env("LINKRUNNER_PII_KEY", "another-key-of-enough-length");
    let out = output(wrong_key).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(everything_stored(&pool).await, before);

    // With the key, the hashed email finds the person.
    let mut keyed = forget(&db, &["--email", "Zqx.Canary@example.net"]);
    keyed.env("LINKRUNNER_PII_KEY", PII_KEY);
    let out = output(keyed).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("attributed_users: 2 rows deleted"), "{said}");
    let email = openssl_hmac("zqx.canary@example.net");
    let left = count(
        &pool,
        &format!("SELECT count(*) FROM linkrunner.attributed_users WHERE user_email = '{email}'"),
    )
    .await;
    assert_eq!(left, 0);
}

#[sqlx::test]
async fn a_forgotten_user_id_is_not_looked_up_even_from_the_apps_own_table(pool: PgPool) {
    let (_sim, server) = project_with_canaries(90).await;
    let db = pool.connect_options();
    sqlx::raw_sql(
        "CREATE SCHEMA app; CREATE TABLE app.users (id text);
         INSERT INTO app.users VALUES ('u-canary'), ('u-canary-nul');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let out = output(forget(
        &db,
        &["--user-id", "u-canary", "--user-id", "u-canary-nul"],
    ))
    .await;
    assert!(out.status.success(), "{out:?}");
    let mut cmd = sync(&db, &server, "keep");
    cmd.args(["--attribution-details", "--lookup-from", "app.users.id"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let about_them = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attribution_results
         WHERE lookup_value IN ('u-canary', 'u-canary-nul')",
    )
    .await;
    assert_eq!(about_them, 0);
    let others = count(&pool, "SELECT count(*) FROM linkrunner.attribution_results").await;
    assert!(others > 0, "nothing was looked up at all");
    let theirs = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users WHERE user_id LIKE 'u-canary%'",
    )
    .await;
    assert_eq!(theirs, 0);
}

/// Pages that cannot be read, each holding personal data where an error message would once
/// have quoted it.
#[sqlx::test]
async fn a_page_that_cannot_be_read_is_described_without_its_contents(pool: PgPool) {
    use common::hostile::{self, Reply};
    let db = pool.connect_options();
    let bodies = [
        // Cut short in the middle of a user.
        r#"{"msg":"ok","status":200,"data":{"users":[{"attributed_at":"2026-11-20T00:00:00.000Z","user_data":{"email":"zqx.canary@example.net","name":"Zqxname"#,
        // Of another shape, a value where the list should be.
        r#"{"msg":"ok","status":200,"data":{"users":"zqx.canary@example.net, +1 555 010 4242"}}"#,
        // No data object, the users at the top.
        r#"{"users":[{"user_data":{"email":"zqx.canary@example.net"}}]}"#,
    ];
    for body in bodies {
        let api = hostile::serve(move |req| match req.path() {
            "/campaigns" => Reply::json(
                200,
                hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
            ),
            _ => Reply::json(200, body),
        })
        .await;
        let mut cmd = sync_command(&database_url(&db), &api.url, "hostile-key");
        cmd.args(["--max-retries", "0", "--since", "2026-11-19"])
            .env("RUST_LOG", "debug");
        let out = output(cmd).await;
        assert!(!out.status.success(), "{out:?}");
        assert_eq!(canaries_in(&printed(&out)), Vec::<&str>::new(), "{body}");
        let errors: Vec<Option<String>> =
            sqlx::query_scalar("SELECT error FROM linkrunner.sync_runs")
                .fetch_all(&pool)
                .await
                .unwrap();
        let errors = format!("{errors:?}").to_lowercase();
        assert!(
            errors.contains("not a page") || errors.contains("no 'data'"),
            "{errors}"
        );
        assert_eq!(canaries_in(&errors), Vec::<&str>::new(), "{errors}");
    }
    assert_nothing_personal_stored(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn the_dry_run_says_what_a_run_would_do_to_stored_personal_data(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let (_sim, server) = project_with_canaries(91).await;
    let dry = |mode: &str, extra: &[&str]| {
        let mut cmd = sync(&db, &server, mode);
        cmd.arg("--dry-run").args(extra).env("RUST_LOG", "warn");
        cmd
    };
    let out = output(dry("hash", &[])).await;
    assert!(out.status.success(), "{out:?}");
    assert!(printed(&out).contains("nothing recorded yet"), "{out:?}");

    let out = output(sync(&db, &server, "keep")).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let before = everything_stored(&pool).await;
    let out = output(dry("keep", &[])).await;
    assert!(
        printed(&out).contains("stored with --personal-data keep, as asked"),
        "{out:?}"
    );
    let out = output(dry("hash", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(printed(&out).contains("--rewrite-personal-data"), "{out:?}");
    let out = output(dry("hash", &["--rewrite-personal-data"])).await;
    assert!(out.status.success(), "{out:?}");
    assert!(printed(&out).contains("would rewrite the"), "{out:?}");
    // A dry run writes nothing: the mode stays, no rewrite is under way.
    assert_eq!(everything_stored(&pool).await, before);
}

/// A server with one campaign and three users, whose look-ups answer with the canaries nested
/// at several depths and in arrays: in a usable answer, in one whose documented field is an
/// object, and in one cut short.
async fn lookups_with_nested_canaries() -> common::hostile::Hostile {
    use common::hostile::{self, Reply};
    let mut deep = json!({"msg": "ok", "status": 200, "data": {
        "campaign_name": "One", "display_id": "c1", "attribution_type": "INORGANIC",
        "user_data": {"id": "u1"},
        "profile": {"contacts": [{"kind": "home"}, {}]},
        "history": [[{"seen": {}}]],
    }});
    let data = &mut deep["data"];
    data["user_data"]["email"] = json!(CANARIES[1].1);
    data["profile"]["contacts"][0]["phone"] = json!(CANARIES[2].1);
    data["profile"]["contacts"][1]["name"] = json!(CANARIES[0].1);
    data["history"][0][0]["seen"]["address"] = json!(CANARIES[3].1);
    data["history"][0][0]["seen"]["phone"] = json!({"mobile": CANARIES[2].1});
    deep["name"] = json!(CANARIES[0].1);
    // The same key spelled with an escape.
    let found = deep
        .to_string()
        .replacen(r#""email""#, r#""em\u0061il""#, 1);
    let odd = json!({"data": {"campaign_name": {"email": CANARIES[1].1},
        "contacts": [{"address": CANARIES[3].1}]}})
    .to_string();
    let cut = format!(r#"{{"data":{{"user_data":{{"email":"{}""#, CANARIES[1].1);
    let users: Vec<String> = (1..=3)
        .map(|i| hostile::user("c1", &format!("u{i}"), "2026-11-02T10:00:00.000Z"))
        .collect();
    hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        "/attributed-users" => Reply::json(200, hostile::page("users", &users, 3, 1)),
        "/get-attribution-result" => match req.query("user_id").as_deref() {
            Some("u1") => Reply::json(200, found.clone()),
            Some("u2") => Reply::json(200, odd.clone()),
            _ => Reply::json(200, cut.clone()),
        },
        _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
    })
    .await
}

/// A sync with look-ups against [`lookups_with_nested_canaries`] in `mode`; each id's answer
/// is kept.
async fn look_up_nested_canaries(pool: &PgPool, mode: &str) -> Output {
    let api = lookups_with_nested_canaries().await;
    let mut cmd = sync_command(&database_url(&pool.connect_options()), &api.url, "sim-key");
    cmd.args(["--personal-data", mode])
        .args(["--personal-data-keys", "name,email,phone,address"])
        .args(["--attribution-details", "--since", "2026-11-01"])
        .env("LINKRUNNER_PII_KEY", PII_KEY)
        .env("RUST_LOG", "debug");
    let out = output(cmd).await;
    assert!(out.status.success(), "{out:?}");
    let kept = count(pool, "SELECT count(*) FROM linkrunner.attribution_results").await;
    assert_eq!(kept, 3, "{out:?}");
    out
}

#[sqlx::test]
async fn personal_values_at_any_depth_of_a_look_up_answer_are_hashed(pool: PgPool) {
    let out = look_up_nested_canaries(&pool, "hash").await;
    assert_nothing_personal_stored(&pool).await;
    assert_nothing_personal_printed(&out);
    let raw: serde_json::Value = sqlx::query_scalar(
        "SELECT raw FROM linkrunner.attribution_results WHERE lookup_value = 'u1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let email = &raw["data"]["user_data"]["email"];
    assert_eq!(email.as_str().map(str::len), Some(64), "{raw}");
    assert_eq!(raw["data"]["user_data"]["id"], "u1", "{raw}");
    assert_eq!(raw["data"]["profile"]["contacts"][0]["kind"], "home");
}

#[sqlx::test]
async fn personal_values_at_any_depth_of_a_look_up_answer_are_dropped(pool: PgPool) {
    let out = look_up_nested_canaries(&pool, "drop").await;
    assert_nothing_personal_stored(&pool).await;
    assert_nothing_personal_printed(&out);
    let raw: serde_json::Value = sqlx::query_scalar(
        "SELECT raw FROM linkrunner.attribution_results WHERE lookup_value = 'u1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(raw["data"]["user_data"], json!({"id": "u1"}), "{raw}");
    assert_eq!(raw["data"]["history"], json!([[{"seen": {}}]]), "{raw}");
}

#[sqlx::test]
async fn in_keep_mode_a_look_up_answer_is_stored_as_received(pool: PgPool) {
    look_up_nested_canaries(&pool, "keep").await;
    let raw: String = sqlx::query_scalar(
        "SELECT raw::text FROM linkrunner.attribution_results WHERE lookup_value = 'u1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(canaries_in(&raw.to_lowercase()).len(), 4, "{raw}");
}
