//! Shared test helpers: a simulator over loopback, sync settings, and reading back what landed.
#![allow(dead_code)]

pub mod daemons;
pub mod hostile;
pub mod process;
pub mod proxy;
pub mod receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use linkrunner_sim::{SimConfig, SimServer, Simulator};
use linkrunner_sync::api::ClientSettings;
use linkrunner_sync::config::{self, SyncConfig};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::{PgPool, Row};

/// Polls `check` every 20 ms until it yields a value; fails the test, naming `what`, when
/// `limit` passes first.
pub async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn start(config: SimConfig) -> (Simulator, SimServer) {
    let sim = Simulator::new(config);
    let server = sim
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator starts");
    (sim, server)
}

/// Settings for a fast sync against the simulator.
pub fn sync_config(server: &SimServer, timezone: &str) -> SyncConfig {
    SyncConfig {
        timezone: config::parse_timezone(timezone).unwrap(),
        ..sync_config_for(&server.base_url())
    }
}

/// Settings for a fast sync against the API at `base_url`, in UTC.
pub fn sync_config_for(base_url: &str) -> SyncConfig {
    let api = ClientSettings {
        base_url: config::base_url(base_url).unwrap(),
        api_key: SecretString::from("sim-key"),
        rps: 2000.0,
        timeout: Duration::from_secs(10),
        max_retries: 10,
        retry_min_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(200),
    };
    SyncConfig {
        concurrency: 4,
        progress: false,
        ..SyncConfig::with_defaults(api, chrono_tz::UTC)
    }
}

/// The attributed user's documented text and time fields (the API contract, section 4) and the
/// columns of `attributed_users` holding them (the migrations), written out here rather than
/// taken from the job's own column table: a field the job mapped to the wrong column, both ways,
/// shows as a difference.
const TEXT_FIELDS: [(&str, &str); 10] = [
    ("ad_channel", "ad_channel"),
    ("campaign_name", "campaign_name"),
    ("link", "link"),
    ("meta_ad_id", "meta_ad_id"),
    ("ad_creative_id", "ad_creative_id"),
    ("ad_creative_name", "ad_creative_name"),
    ("ad_set_id", "ad_set_id"),
    ("ad_set_name", "ad_set_name"),
    ("publisher_platform", "publisher_platform"),
    ("platform_position", "platform_position"),
];
const TIME_FIELDS: [(&str, &str); 2] = [
    ("installed_at", "installed_at"),
    ("store_click_at", "store_click_at"),
];

/// An instant as the API writes it: milliseconds and `Z`.
fn wire_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Every stored attributed user, rebuilt as the API sent it: the typed columns under the
/// contract's names, `user_data` as stored, and `extra` laid back over them (its members as
/// received, `__absent` naming documented fields the row did not have).
pub async fn stored_rows(pool: &PgPool) -> Vec<Value> {
    stored_rows_in(pool, "linkrunner").await
}

/// [`stored_rows`] of schema `schema`.
pub async fn stored_rows_in(pool: &PgPool, schema: &str) -> Vec<Value> {
    let columns: Vec<&str> = TEXT_FIELDS
        .iter()
        .chain(&TIME_FIELDS)
        .map(|(_, column)| *column)
        .collect();
    let sql = format!(
        "SELECT campaign_display_id, attributed_at, user_data, extra, {} FROM \"{schema}\".attributed_users",
        columns.join(", ")
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await.unwrap();
    rows.into_iter()
        .map(|r| {
            let mut row = serde_json::Map::new();
            let campaign: String = r.get("campaign_display_id");
            let at: DateTime<Utc> = r.get("attributed_at");
            row.insert("campaign_display_id".into(), campaign.into());
            row.insert("attributed_at".into(), wire_time(at).into());
            for (field, column) in TEXT_FIELDS {
                let value: Option<String> = r.get(column);
                row.insert(field.into(), value.map_or(Value::Null, Value::String));
            }
            for (field, column) in TIME_FIELDS {
                let value: Option<DateTime<Utc>> = r.get(column);
                row.insert(
                    field.into(),
                    value.map_or(Value::Null, |t| wire_time(t).into()),
                );
            }
            let user_data: Option<Value> = r.get("user_data");
            row.insert("user_data".into(), user_data.unwrap_or(Value::Null));
            if let Some(Value::Object(extra)) = r.get::<Option<Value>, _>("extra") {
                for (key, value) in &extra {
                    if key != "__absent" {
                        row.insert(key.clone(), value.clone());
                    }
                }
                if let Some(Value::Array(absent)) = extra.get("__absent") {
                    for key in absent.iter().filter_map(Value::as_str) {
                        row.remove(key);
                    }
                }
            }
            Value::Object(row)
        })
        .collect()
}

/// Rows as a sorted multiset of canonical JSON text, so two sets compare exactly.
pub fn canonical(rows: &[Value]) -> Vec<String> {
    let mut text: Vec<String> = rows.iter().map(Value::to_string).collect();
    text.sort();
    text
}

/// Asserts the database holds exactly the simulator's attributed users: none missing, none
/// doubled, every field equal.
pub async fn assert_exact(pool: &PgPool, sim: &Simulator) {
    assert_exact_in(pool, sim, "linkrunner").await
}

/// [`assert_exact`] for schema `schema`.
pub async fn assert_exact_in(pool: &PgPool, sim: &Simulator, schema: &str) {
    let expected = canonical(&sim.all_attributed_users());
    let stored = canonical(&stored_rows_in(pool, schema).await);
    let missing: Vec<&String> = expected
        .iter()
        .filter(|r| !stored.contains(r))
        .take(3)
        .collect();
    let unexpected: Vec<&String> = stored
        .iter()
        .filter(|r| !expected.contains(r))
        .take(3)
        .collect();
    assert!(
        missing.is_empty() && unexpected.is_empty() && expected.len() == stored.len(),
        "database differs from the simulator: {} expected, {} stored\nmissing: {missing:#?}\nunexpected: {unexpected:#?}",
        expected.len(),
        stored.len()
    );
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

pub async fn checkpoints(pool: &PgPool) -> BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> {
    sqlx::query(
        "SELECT campaign_display_id, covered_from, synced_until FROM linkrunner.sync_checkpoints",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2))))
    .collect()
}

/// The URL of the test's own database, for running the binary against it.
pub fn database_url(options: &sqlx::postgres::PgConnectOptions) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(options.get_database().expect("test database name"));
    url.to_string()
}

/// Asserts what a checkpoint claims: every simulator row inside a campaign's checkpoint interval
/// is stored. A half-written range would break this.
pub async fn assert_checkpoints_truthful(pool: &PgPool, sim: &Simulator) {
    // Checkpoints first: a killed run's last commit may land while we read, and rows read after
    // their checkpoint include it.
    let claimed = checkpoints(pool).await;
    let stored: std::collections::HashSet<String> =
        canonical(&stored_rows(pool).await).into_iter().collect();
    for (campaign, (from, until)) in claimed {
        for row in sim.attributed_users(&campaign) {
            let Some(at) = row["attributed_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            else {
                continue;
            };
            let at = at.with_timezone(&Utc);
            assert!(
                !(from <= at && at < until) || stored.contains(&row.to_string()),
                "{campaign}: checkpoint [{from}, {until}) covers {at} but the row is missing: {row}"
            );
        }
    }
}

/// `linkrunner-sync sync` with its environment and no flags.
pub fn bare_sync_command(db_url: &str, base_url: &str, key: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    cmd.arg("sync")
        .env("DATABASE_URL", db_url)
        .env("LINKRUNNER_BASE_URL", base_url)
        .env("LINKRUNNER_API_KEY", key)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    cmd
}

/// The linkrunner-sync binary with the settings a fast test run needs.
pub fn sync_command(db_url: &str, base_url: &str, key: &str) -> std::process::Command {
    let mut cmd = bare_sync_command(db_url, base_url, key);
    cmd.args(["--rps", "2000", "--retry-delay", "10ms", "--no-progress"]);
    cmd
}

pub async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Drives the SDK flow: an install opened from the campaign link, then a signup.
pub async fn signup(
    server: &linkrunner_sim::SimServer,
    campaign: &Value,
    install: &str,
    user: &str,
) {
    sdk_signup(server, Some(&campaign["link"]), install, user).await;
}

/// An install opened from `link` (none: an organic install), then a signup on it.
pub async fn sdk_signup(
    server: &linkrunner_sim::SimServer,
    link: Option<&Value>,
    install: &str,
    user: &str,
) {
    let user_data =
        serde_json::json!({"id": user, "name": "Late Signup", "email": "late@example.net"});
    sdk_signup_as(server, link, install, user_data).await;
}

/// As [`sdk_signup`], the app sending `user_data`.
pub async fn sdk_signup_as(
    server: &linkrunner_sim::SimServer,
    link: Option<&Value>,
    install: &str,
    user_data: Value,
) {
    let http = reqwest::Client::new();
    let mut init = serde_json::json!({
        "token": "sim-token",
        "platform": "ANDROID",
        "install_instance_id": install,
        "device_data": {"brand": "google", "device_id": "dev-1"}
    });
    if let Some(link) = link {
        init["link"] = link.clone();
    }
    let init = http
        .post(format!("{}/init", server.client_url()))
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 202);
    let trigger = http
        .post(format!("{}/trigger", server.client_url()))
        .json(&serde_json::json!({
            "token": "sim-token",
            "platform": "ANDROID",
            "install_instance_id": install,
            "user_data": user_data
        }))
        .send()
        .await
        .unwrap();
    assert!(trigger.status().is_success());
}

/// Asserts two maps are equal, naming the first few keys where they differ.
pub fn assert_same<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
    what: &str,
) {
    let keys: BTreeSet<&K> = got.keys().chain(want.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(k) != want.get(k))
        .take(5)
        .map(|k| format!("{k:?}: got {:?}, expected {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(differ.is_empty(), "{what} differ:\n{}", differ.join("\n"));
}
