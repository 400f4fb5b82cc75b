//! `GET /get-attribution-result` over loopback, against the generated data: each user id and
//! advertising id answers its latest row, and keeps doing so while rows churn and reshuffle.

mod common;

use common::{ad_ids, assert_answers, latest_by, user_id, Api};
use linkrunner_sim::{Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// The keys of `latest` worth asking: every one with more than one row (with the rows' first
/// campaign unlike the latest one's, for some), and `plain` of the others.
fn sample(rows: &[Value], key: fn(&Value) -> Vec<String>, plain: usize) -> Vec<String> {
    let mut seen: HashMap<String, Vec<&Value>> = HashMap::new();
    for row in rows {
        key(row)
            .into_iter()
            .for_each(|k| seen.entry(k).or_default().push(row));
    }
    let (mut again, once): (Vec<_>, Vec<_>) = seen.into_iter().partition(|(_, r)| r.len() > 1);
    let moved = |(_, r): &(String, Vec<&Value>)| {
        let first = r
            .iter()
            .min_by_key(|r| r["attributed_at"].as_str())
            .unwrap();
        let last = r
            .iter()
            .max_by_key(|r| r["attributed_at"].as_str())
            .unwrap();
        first["campaign_display_id"] != last["campaign_display_id"]
    };
    assert!(again.iter().filter(|k| moved(k)).count() >= 10);
    again.extend(once.into_iter().take(plain));
    let mut keys: Vec<String> = again.into_iter().map(|(k, _)| k).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn user_ids_answer_their_latest_attribution() {
    let api = Api::start(SimConfig::default()).await;
    let rows = api.sim.all_attributed_users();
    let latest = latest_by(&rows, user_id);
    for user in sample(&rows, user_id, 100) {
        let data = api.found(&[("user_id", &user)]).await;
        assert_answers(&data, &latest[&user]);
    }
}

#[tokio::test]
async fn device_ids_answer_their_latest_attribution_in_any_case() {
    let api = Api::start(SimConfig::default()).await;
    let rows = api.sim.all_attributed_users();
    let latest = latest_by(&rows, ad_ids);
    for id in sample(&rows, ad_ids, 100) {
        let data = api.found(&[("device_identifier", &id)]).await;
        assert_answers(&data, &latest[&id]);
        let other_case = api
            .found(&[("device_identifier", &id.to_lowercase())])
            .await;
        assert_eq!(other_case, data);
    }
}

#[tokio::test]
async fn user_id_wins_unknown_ids_answer_204_and_neither_is_400() {
    let api = Api::start(SimConfig::small(3)).await;
    let rows = api.sim.all_attributed_users();
    let (users, devices) = (latest_by(&rows, user_id), latest_by(&rows, ad_ids));
    let (user, by_user) = users.iter().next().unwrap();
    let by_campaign = |rows: &[Value]| rows[0]["campaign_display_id"].clone();
    let (device, _) = devices
        .iter()
        .find(|(_, r)| by_campaign(r) != by_campaign(by_user))
        .unwrap();
    let both = [("user_id", user.as_str()), ("device_identifier", device)];
    assert_answers(&api.found(&both).await, by_user);
    let unknown_user = [("user_id", "u_nobody"), ("device_identifier", device)];
    assert_answers(&api.found(&unknown_user).await, &devices[device]);
    let empty_user = [("user_id", ""), ("device_identifier", device)];
    assert_answers(&api.found(&empty_user).await, &devices[device]);

    let nobody = [
        ("user_id", "u_nobody"),
        ("device_identifier", "no-such-device"),
    ];
    assert_eq!(
        api.lookup(&nobody).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    let required =
        json!({ "msg": "Either device_identifier or user_id is required.", "status": 400 });
    let empty = [("user_id", ""), ("device_identifier", "")];
    for query in [&[][..], &empty[..], &[("other", "x")][..]] {
        let answer = (StatusCode::BAD_REQUEST, required.clone());
        assert_eq!(api.lookup(query).await, answer, "{query:?}");
    }
}

#[tokio::test]
async fn keywords_only_on_apple_search_ads_rows() {
    let api = Api::start(SimConfig::default()).await;
    let rows = api.sim.all_attributed_users();
    let latest = latest_by(&rows, user_id);
    let mut networks = HashMap::new();
    for (user, rows) in latest.iter().filter(|(_, r)| r.len() == 1) {
        let network = rows[0]["ad_channel"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let asked = networks.entry(network.clone()).or_insert(0);
        if *asked == 20 {
            continue;
        }
        *asked += 1;
        let data = api.found(&[("user_id", user)]).await;
        let (id, name) = (&data["keyword_id"], &data["keyword_name"]);
        if network == "APPLE_SEARCH_ADS" {
            assert!(id.as_str().unwrap().parse::<u64>().is_ok(), "{data}");
            assert!(!name.as_str().unwrap().is_empty(), "{data}");
        } else {
            assert_eq!((id, name), (&json!(""), &json!("")), "{data}");
        }
    }
    for network in ["APPLE_SEARCH_ADS", "META", "GOOGLE", ""] {
        assert!(networks.get(network).is_some_and(|n| *n > 0), "{network}");
    }
}

#[tokio::test]
async fn the_apple_search_ads_channel_lists_the_campaigns_of_its_rows() {
    let api = Api::start(SimConfig::default()).await;
    let rows = api.sim.all_attributed_users();
    let asa = |r: &&Value| r["ad_channel"] == "APPLE_SEARCH_ADS";
    let campaign = |r: &Value| r["campaign_display_id"].as_str().unwrap().to_string();
    let with_rows: HashSet<String> = rows.iter().filter(asa).map(campaign).collect();
    let query = [("channel", "APPLE_SEARCH_ADS"), ("limit", "1000")];
    let (_, listed) = api.get("/campaigns", &query).await;
    let listed = listed["data"]["campaigns"].as_array().unwrap();
    let display_id = |c: &Value| c["display_id"].as_str().unwrap().to_string();
    let listed: HashSet<String> = listed.iter().map(display_id).collect();
    assert!(with_rows.is_subset(&listed) && !with_rows.is_empty());
    let other = |r: &&Value| listed.contains(&campaign(r)) && !asa(r);
    assert_eq!(rows.iter().filter(other).count(), 0);
}

/// Pages 2 to 40 of the biggest campaign: with churn and shift on, each adds or removes a row
/// and reshuffles the rest.
async fn churn_the_biggest(api: &Api) {
    let campaigns = api.sim.campaigns();
    let big = campaigns
        .iter()
        .max_by_key(|c| c["attributed_users"].as_u64());
    let id = big.unwrap()["display_id"].as_str().unwrap();
    for page in 2..=40 {
        let page = page.to_string();
        let query = [("display_id", id), ("page", &page), ("limit", "5")];
        assert_eq!(api.get("/attributed-users", &query).await.0, StatusCode::OK);
    }
    let stats = api.sim.stats();
    assert!(stats.rows_added > 5 && stats.rows_removed > 5, "{stats:?}");
}

#[tokio::test]
async fn look_ups_follow_churn_and_reshuffles() {
    let faults = Faults {
        churn_rate: 1.0,
        shift_rate: 1.0,
        ..Faults::default()
    };
    let api = Api::start(SimConfig::small(4)).await;
    let before = api.sim.all_attributed_users();
    // Built before the rows change, so it has to follow them.
    api.found(&[("user_id", user_id(&before[0])[0].as_str())])
        .await;
    api.sim.set_faults(faults);
    churn_the_biggest(&api).await;
    let rows = api.sim.all_attributed_users();
    let latest = latest_by(&rows, user_id);
    let removed = api.sim.removed_rows();
    let asked: HashSet<String> = before.iter().chain(&rows).flat_map(user_id).collect();
    for user in asked {
        let answer = api.lookup(&[("user_id", &user)]).await;
        match latest.get(&user) {
            Some(rows) => assert_answers(&answer.1["data"], rows),
            None => assert_eq!(answer.0, StatusCode::NO_CONTENT, "{user}"),
        }
    }
    assert!(removed
        .iter()
        .flat_map(user_id)
        .any(|u| !latest.contains_key(&u)));
}
