//! The attribution-details views and example queries (`sql/`), run against a database filled by
//! a sync with look-ups and checked against what the simulator answers for each id, asked here
//! over HTTP.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use chrono::{DateTime, NaiveDate, Utc};
use linkrunner_sim::{SimConfig, SimServer};
use linkrunner_sync::config::{LookupSettings, SyncConfig};
use linkrunner_sync::model::lookup::LookupSource;
use linkrunner_sync::sync;
use serde_json::Value;
use sqlx::{PgPool, Row};

/// An id's answer as the simulator gives it: None for a 204.
type Truth = BTreeMap<(String, String), Option<Value>>;

async fn ask(server: &SimServer, kind: &str, value: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/get-attribution-result", server.base_url()))
        .query(&[(kind, value)])
        .header("linkrunner-key", "sim-key")
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        204 => None,
        200 => Some(response.json::<Value>().await.unwrap()["data"].clone()),
        other => panic!("the simulator answered {other}"),
    }
}

fn text(answer: &Value, key: &str) -> Option<String> {
    answer[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The ids a row is looked up by: its user id, else its device's GAID and IDFA.
fn ids_of(row: &Value) -> Vec<(String, String)> {
    if let Some(id) = row["user_data"]["id"].as_str().filter(|s| !s.is_empty()) {
        return vec![("user_id".into(), id.into())];
    }
    let device = &row["user_data"]["device_data"];
    ["gaid", "idfa"]
        .iter()
        .filter_map(|k| device[*k].as_str())
        .filter(|v| !v.is_empty() && *v != "00000000-0000-0000-0000-000000000000")
        .map(|v| ("device_identifier".into(), v.into()))
        .collect()
}

/// The answer for a row's first id that has one.
fn answer_of<'t>(row: &Value, truth: &'t Truth) -> Option<&'t Value> {
    ids_of(row)
        .iter()
        .find_map(|id| truth.get(id).and_then(Option::as_ref))
}

fn query(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[sqlx::test]
async fn attribution_views_and_queries_answer_what_the_simulator_says(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(22)).await;
    // An install opened without a campaign link, and a signup on it: an organic user.
    sdk_signup(&server, None, "install-organic", "organic-1").await;
    let rows = sim.all_attributed_users();
    let users: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["user_data"]["id"].as_str())
        .collect();
    sqlx::raw_sql("CREATE SCHEMA app; CREATE TABLE app.users (id text)")
        .execute(&pool)
        .await
        .unwrap();
    for id in users.iter().copied().chain(["organic-1", "nobody"]) {
        sqlx::query("INSERT INTO app.users VALUES ($1)")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    let config = SyncConfig {
        lookups: Some(LookupSettings {
            sources: vec![LookupSource::parse("app.users.id").unwrap()],
            max: 1_000_000,
        }),
        ..sync_config(&server, "UTC")
    };
    let report = sync::run(&config, &pool).await.unwrap();
    assert_eq!(report.totals.lookups.failed, 0);

    // The truth: every id the table holds, asked of the simulator.
    let stored = sqlx::query("SELECT * FROM linkrunner.attribution_results")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut truth = Truth::new();
    for row in &stored {
        let (kind, value): (String, String) = (row.get("lookup_kind"), row.get("lookup_value"));
        let answer = ask(&server, &kind, &value).await;
        // The table holds the answer, field by field.
        let found: Option<bool> = row.get("found");
        assert_eq!(found, Some(answer.is_some()), "{kind} {value}");
        if let Some(a) = &answer {
            for key in [
                "display_id",
                "ad_network",
                "attribution_type",
                "keyword_id",
                "keyword_name",
                "ad_set_name",
            ] {
                assert_eq!(
                    row.get::<Option<String>, _>(key),
                    text(a, key),
                    "{key} of {value}"
                );
            }
        }
        truth.insert((kind, value), answer);
    }
    let organic = &truth[&("user_id".into(), "organic-1".into())];
    assert_eq!(
        text(organic.as_ref().unwrap(), "attribution_type").as_deref(),
        Some("ORGANIC")
    );
    assert_eq!(truth[&("user_id".into(), "nobody".into())], None);
    assert!(
        truth
            .values()
            .flatten()
            .any(|a| text(a, "keyword_name").is_some()),
        "the data has Apple Search Ads keywords"
    );

    users_by_attribution_type(&pool, &rows, &truth).await;
    signups_by_keyword(&pool, &rows, &truth).await;
    organic_share(&pool, &truth).await;
    with_details(&pool, &rows, &truth).await;
}

async fn users_by_attribution_type(pool: &PgPool, rows: &[Value], truth: &Truth) {
    let mut first: BTreeMap<(String, String), DateTime<Utc>> = BTreeMap::new();
    for row in rows {
        let at: DateTime<Utc> = row["attributed_at"].as_str().unwrap().parse().unwrap();
        for id in ids_of(row) {
            first
                .entry(id)
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    let today = Utc::now().date_naive();
    let mut want: BTreeMap<(NaiveDate, Option<String>, Option<String>), i64> = BTreeMap::new();
    for (id, answer) in truth {
        let Some(a) = answer else { continue };
        let day = first.get(id).map_or(today, |t| t.date_naive());
        *want
            .entry((day, text(a, "attribution_type"), text(a, "ad_network")))
            .or_default() += 1;
    }
    let got: BTreeMap<_, i64> = sqlx::query(&query("users_by_attribution_type.sql"))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r.get("day"), r.get("attribution_type"), r.get("ad_network")),
                r.get("users"),
            )
        })
        .collect();
    assert_eq!(got, want);
}

/// A keyword's id and name.
type Keyword = (Option<String>, Option<String>);

async fn signups_by_keyword(pool: &PgPool, rows: &[Value], truth: &Truth) {
    // Per keyword: signups and the users among them.
    let mut want: BTreeMap<Keyword, (i64, BTreeSet<String>)> = BTreeMap::new();
    for row in rows {
        let Some(a) = answer_of(row, truth) else {
            continue;
        };
        if text(a, "ad_network").as_deref() != Some("APPLE_SEARCH_ADS") {
            continue;
        }
        let entry = want
            .entry((text(a, "keyword_id"), text(a, "keyword_name")))
            .or_default();
        entry.0 += 1;
        if let Some(user) = row["user_data"]["id"].as_str() {
            entry.1.insert(user.to_owned());
        }
    }
    assert!(!want.is_empty());
    let want: BTreeMap<_, _> = want
        .into_iter()
        .map(|(k, (signups, users))| (k, (signups, users.len() as i64)))
        .collect();
    let got: BTreeMap<_, _> = sqlx::query(&query("signups_by_search_ads_keyword.sql"))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r.get("keyword_id"), r.get("keyword_name")),
                (r.get("signups"), r.get("users")),
            )
        })
        .collect();
    assert_eq!(got, want);
}

async fn organic_share(pool: &PgPool, truth: &Truth) {
    let by_user = truth.iter().filter(|((kind, _), _)| kind == "user_id");
    let (mut organic, mut paid, mut unknown) = (0i64, 0i64, 0i64);
    for (_, answer) in by_user {
        match answer
            .as_ref()
            .and_then(|a| text(a, "attribution_type"))
            .as_deref()
        {
            Some("ORGANIC") => organic += 1,
            Some("INORGANIC") => paid += 1,
            None => unknown += 1,
            Some(other) => panic!("attribution_type {other}"),
        }
    }
    let row = sqlx::query(&query("organic_share_of_app_users.sql"))
        .fetch_one(pool)
        .await
        .unwrap();
    let got: (i64, i64, i64) = (row.get("organic"), row.get("paid"), row.get("unknown"));
    assert_eq!(got, (organic, paid, unknown));
    assert!(organic >= 1 && paid > 100 && unknown >= 1);
}

async fn with_details(pool: &PgPool, rows: &[Value], truth: &Truth) {
    let got = sqlx::query(&query("attributed_users_with_details.sql"))
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(got.len(), rows.len(), "one line per signup");
    let mut want: BTreeMap<(String, Option<String>), Option<String>> = BTreeMap::new();
    for row in rows {
        let key = (
            row["campaign_display_id"].as_str().unwrap().to_owned(),
            row["user_data"]["id"].as_str().map(str::to_owned),
        );
        let answer = answer_of(row, truth);
        want.insert(key, answer.and_then(|a| text(a, "attribution_type")));
    }
    for row in &got {
        let key: (String, Option<String>) = (row.get("campaign_display_id"), row.get("user_id"));
        if key.1.is_some() {
            assert_eq!(
                row.get::<Option<String>, _>("attribution_type"),
                want[&key],
                "{key:?}"
            );
        }
    }
}
