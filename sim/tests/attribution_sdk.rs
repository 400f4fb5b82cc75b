//! `GET /get-attribution-result` after SDK writes (organic installs and signups, reattribution,
//! a deleted campaign), and the key, rate limit, faults and stats it shares with the other Data
//! API routes.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{assert_organic, Api};
use linkrunner_sim::{Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Creates campaign `display_id`; its link.
async fn create(api: &Api, display_id: &str) -> String {
    let url = format!("{}/create-campaign", api.server.base_url());
    let deeplink = format!("https://go.example.org/offers/{display_id}");
    let body = json!({ "name": display_id.to_uppercase(), "custom_display_id": display_id,
        "deeplink": deeplink });
    let req = api.http.post(url).header("linkrunner-key", "sim-key");
    let resp = req.json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    body["data"]["link"].as_str().unwrap().to_string()
}

async fn delete(api: &Api, display_id: &str) {
    let url = format!("{}/campaigns/{display_id}", api.server.base_url());
    let delete = api.http.delete(url).header("linkrunner-key", "sim-key");
    assert_eq!(
        delete.send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

/// An `init` of install `iid` with a GAID, opened through `link` if any.
async fn init(api: &Api, iid: &str, gaid: &str, link: Option<&str>) {
    let body = json!({ "install_instance_id": iid, "link": link, "device_data": { "gaid": gaid } });
    assert_eq!(api.client("init", body).await, StatusCode::ACCEPTED);
}

async fn sign_up(api: &Api, iid: &str, user_id: &str) {
    let body = json!({ "install_instance_id": iid, "user_data": { "id": user_id } });
    assert_eq!(api.client("trigger", body).await, StatusCode::OK);
}

async fn campaign_of(api: &Api, query: &[(&str, &str)]) -> Value {
    api.found(query).await["display_id"].clone()
}

#[tokio::test]
async fn organic_installs_and_their_signups_are_organic() {
    let api = Api::start(SimConfig::small(1)).await;
    let link = create(&api, "spring-K1").await;
    init(&api, "i-organic", "gaid-organic", None).await;
    init(&api, "i-linked", "gaid-linked", Some(&link)).await;
    assert_organic(&api.found(&[("device_identifier", "gaid-organic")]).await);
    // An install through a plain link, before any signup: the campaign, and no ad behind it.
    let linked = api.found(&[("device_identifier", "GAID-LINKED")]).await;
    let expected = json!({
        "campaign_name": "SPRING-K1", "display_id": "spring-K1",
        "deeplink": "https://go.example.org/offers/spring-K1", "domain_name": "go.example.org",
        "ad_set_id": null, "ad_set_name": null, "ad_creative_id": null, "ad_creative_name": null,
        "keyword_id": "", "keyword_name": "", "ad_network": null, "attribution_type": "INORGANIC",
    });
    assert_eq!(linked, expected);

    sign_up(&api, "i-organic", "u_org").await;
    assert_organic(&api.found(&[("user_id", "u_org")]).await);
    let rows = api.sim.all_attributed_users();
    assert!(
        rows.iter().all(|r| r["user_data"]["id"] != "u_org"),
        "no row"
    );

    // A signup on an install no `init` registered has no attribution to answer.
    sign_up(&api, "i-unknown", "u_ghost").await;
    let ghost = api.lookup(&[("user_id", "u_ghost")]).await;
    assert_eq!(ghost.0, StatusCode::NO_CONTENT);
    // The all-zero IDFA of a device without tracking names no device.
    let zeros = "00000000-0000-0000-0000-000000000000";
    let body = json!({ "install_instance_id": "i-ios", "device_data": { "idfa": zeros } });
    assert_eq!(api.client("init", body).await, StatusCode::ACCEPTED);
    let by_zeros = api.lookup(&[("device_identifier", zeros)]).await;
    assert_eq!(by_zeros.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn reattribution_through_the_sdk_changes_the_answer() {
    let api = Api::start(SimConfig::small(2)).await;
    let t0: DateTime<Utc> = "2026-12-01T10:00:00.000Z".parse().unwrap();
    let day = |n| Some(t0 + TimeDelta::days(n));
    api.sim.set_now(day(0));
    let (a, b) = (create(&api, "camp-A").await, create(&api, "camp-B").await);
    let user = [("user_id", "u_moving")];
    init(&api, "i-1", "gaid-1", Some(&a)).await;
    sign_up(&api, "i-1", "u_moving").await;
    assert_eq!(campaign_of(&api, &user).await, "camp-A");

    api.sim.set_now(day(3));
    init(&api, "i-2", "gaid-2", Some(&b)).await;
    sign_up(&api, "i-2", "u_moving").await;
    assert_eq!(campaign_of(&api, &user).await, "camp-B");
    let first_device = [("device_identifier", "gaid-1")];
    assert_eq!(campaign_of(&api, &first_device).await, "camp-A");
    // A later login on the first install changes the user's details, not the attribution.
    api.sim.set_now(day(4));
    sign_up(&api, "i-1", "u_moving").await;
    assert_eq!(campaign_of(&api, &user).await, "camp-B");
    let builds = api.sim.stats().attribution_index_builds;
    assert_eq!(builds, 1, "SDK writes patch the index");

    // Deleting B takes its row and its install's attribution away.
    delete(&api, "camp-B").await;
    assert_eq!(campaign_of(&api, &user).await, "camp-A");
    let second_device = api.lookup(&[("device_identifier", "gaid-2")]).await;
    assert_eq!(second_device.0, StatusCode::NO_CONTENT);

    // A still later signup on an organic install is the user's latest attribution.
    api.sim.set_now(day(5));
    init(&api, "i-3", "gaid-3", None).await;
    sign_up(&api, "i-3", "u_moving").await;
    assert_organic(&api.found(&user).await);
    assert_eq!(api.sim.stats().attribution_index_builds, 2);
}

/// How a client reads an answer: its status, and a JSON, cut, HTML or broken body.
async fn outcome(api: &Api, query: &[(&str, &str)]) -> String {
    let url = format!("{}/get-attribution-result", api.server.base_url());
    let req = api
        .http
        .get(url)
        .query(query)
        .header("linkrunner-key", "sim-key");
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = match resp.bytes().await {
        Err(_) => "broken",
        Ok(b) if b.is_empty() => "empty",
        Ok(b) if b.starts_with(b"<html>") => "html",
        Ok(b) if serde_json::from_slice::<Value>(&b).is_ok() => "json",
        Ok(_) => "cut",
    };
    format!("{status} {body}")
}

/// A user id with an attribution.
fn some_user(api: &Api) -> String {
    let rows = api.sim.all_attributed_users();
    let user = rows.iter().find_map(|r| r["user_data"]["id"].as_str());
    user.unwrap().to_string()
}

#[tokio::test]
async fn look_ups_share_the_key_rate_limit_and_errors_of_the_data_api() {
    let api = Api::start(SimConfig::small(5)).await;
    let user = some_user(&api);
    let found = [("user_id", user.as_str())];
    let unauthorized = json!({ "msg": "Unauthorized access.", "status": 401 });
    let wrong_key = api.lookup_with(&found, "wrong").await;
    assert_eq!(wrong_key, (StatusCode::UNAUTHORIZED, unauthorized));

    let limit = Some(0.001);
    api.sim.set_faults(Faults {
        rate_limit_rps: limit,
        ..Faults::default()
    });
    assert_eq!(outcome(&api, &found).await, "200 json");
    let limited = api.lookup(&found).await;
    let msg = json!({ "msg": "Rate limit exceeded. Please try again later.", "status": 429 });
    assert_eq!(limited, (StatusCode::TOO_MANY_REQUESTS, msg));
    api.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..3 {
        assert!(api.lookup(&found).await.0.is_server_error());
    }
    let s = api.sim.stats();
    assert_eq!((s.rate_limited, s.server_errors), (1, 3));
}

#[tokio::test]
async fn look_ups_get_the_spoiled_bodies_of_the_data_api() {
    let api = Api::start(SimConfig::small(5)).await;
    let user = some_user(&api);
    let (found, missing) = ([("user_id", user.as_str())], [("user_id", "u_nobody")]);
    // 200 bodies are spoiled as on the other routes; an empty 204 has nothing to spoil.
    let off = Faults::default;
    let spoiled = [
        (
            Faults {
                reset_rate: 1.0,
                ..off()
            },
            "200 broken",
        ),
        (
            Faults {
                truncate_rate: 1.0,
                ..off()
            },
            "200 cut",
        ),
        (
            Faults {
                html_rate: 1.0,
                ..off()
            },
            "200 html",
        ),
    ];
    for (faults, expected) in spoiled {
        api.sim.set_faults(faults);
        assert_eq!(outcome(&api, &found).await, expected);
        assert_eq!(outcome(&api, &missing).await, "204 empty");
    }
    let s = api.sim.stats();
    assert_eq!((s.resets, s.truncated, s.html), (1, 1, 1));
}

#[tokio::test]
async fn stats_count_look_ups() {
    let api = Api::start(SimConfig::small(6)).await;
    let rows = api.sim.all_attributed_users();
    let users: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["user_data"]["id"].as_str())
        .collect();
    for user in &users[..25] {
        api.found(&[("user_id", user)]).await;
    }
    for n in 0..7 {
        let missing = api.lookup(&[("user_id", &format!("u_none_{n}"))]).await;
        assert_eq!(missing.0, StatusCode::NO_CONTENT);
    }
    assert_eq!(api.lookup(&[]).await.0, StatusCode::BAD_REQUEST);
    let stats = api.stats().await;
    let counts = [
        "attribution_result_requests",
        "attribution_found",
        "attribution_not_found",
        "attribution_index_builds",
    ]
    .map(|k| stats[k].as_u64().unwrap());
    assert_eq!(counts, [33, 25, 7, 1], "{stats}");
    assert_eq!(api.sim.stats().attribution_found, 25);
}
