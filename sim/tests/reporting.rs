//! `GET /reporting/campaigns` over loopback: formatted numbers, sign-ups that follow the
//! attributed users per project day, zeros after a campaign's creation day, ad sets, paging,
//! sorting, views and late numbers. Its limit, key and billing are in `reporting_limits.rs`.

mod common;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use common::Api;
use linkrunner_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A small project in `tz` without the reporting limit, so a test can ask as often as it likes.
fn project(seed: u64, tz: Tz) -> SimConfig {
    SimConfig {
        reporting_timezone: tz,
        reporting_limit: None,
        ..SimConfig::small(seed)
    }
}

/// A formatted count such as `"3,201"`, read back.
fn count(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not text"));
    let groups: Vec<&str> = s.split(',').collect();
    let digits = |g: &&str| g.bytes().all(|b| b.is_ascii_digit());
    let well_formed = (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(digits);
    assert!(
        well_formed && !(groups.len() > 1 && groups[0] == "0"),
        "{s}"
    );
    s.replace(',', "").parse().unwrap()
}

/// A number with exactly two decimals after a count, in hundredths.
fn hundredths(s: &str) -> u64 {
    let (whole, cents) = s.split_once('.').unwrap_or_else(|| panic!("{s}"));
    assert!(
        cents.len() == 2 && cents.bytes().all(|b| b.is_ascii_digit()),
        "{s}"
    );
    count(&json!(whole)) * 100 + cents.parse::<u64>().unwrap()
}

/// `"$12,540.50"` in cents.
fn money(v: &Value) -> u64 {
    let s = v.as_str().unwrap();
    hundredths(s.strip_prefix('$').unwrap_or_else(|| panic!("{s}")))
}

/// `"95.38%"` in hundredths of a percent.
fn percent(v: &Value) -> u64 {
    let s = v.as_str().unwrap();
    hundredths(s.strip_suffix('%').unwrap_or_else(|| panic!("{s}")))
}

/// Checks every number of an item (campaign, ad set or creative) of the user-acquisition view
/// is formatted and the funnel holds; its sign-ups.
fn check_numbers(item: &Value) -> u64 {
    let (clicks, installs, signups) = (
        count(&item["clicks"]),
        count(&item["installs"]),
        count(&item["sign-ups"]),
    );
    assert!(clicks >= installs && installs >= signups, "{item}");
    for k in [
        "uninstalls",
        "suspicious_installs",
        "view_through_attribution",
    ] {
        assert!(count(&item[k]) <= installs, "{k} of {item}");
    }
    for k in ["revenue", "spend", "cost_per_install", "cost_per_signup"] {
        money(&item[k]);
    }
    let expected = (signups * 20_000 + installs) / (2 * installs.max(1));
    assert_eq!(percent(&item["conversion"]), expected, "{item}");
    hundredths(item["roas"].as_str().unwrap());
    assert!(item["retention"]["d30"].is_number());
    signups
}

/// Every campaign of one day (or lifetime, without a day), by display id.
fn by_id(data: &Value) -> BTreeMap<String, Value> {
    let items = data["campaigns"].as_array().unwrap();
    let id = |c: &Value| c["display_id"].as_str().unwrap().to_string();
    items.iter().map(|c| (id(c), c.clone())).collect()
}

/// Sign-ups per (display id, project day), counted from the attributed users as served.
fn signups_per_day(api: &Api, tz: Tz) -> BTreeMap<(String, NaiveDate), u64> {
    let mut out = BTreeMap::new();
    for row in api.sim.all_attributed_users() {
        let at: DateTime<Utc> = row["attributed_at"].as_str().unwrap().parse().unwrap();
        let id = row["campaign_display_id"].as_str().unwrap().to_string();
        *out.entry((id, at.with_timezone(&tz).date_naive()))
            .or_default() += 1;
    }
    out
}

#[tokio::test]
async fn signups_are_the_attributed_users_of_each_project_day() {
    let tz = Tz::America__New_York;
    let api = Api::start(project(31, tz)).await;
    let expected = signups_per_day(&api, tz);
    // The busiest days, and the days DST starts and ends, whose midnights rows sit on.
    let mut days: Vec<NaiveDate> = expected.keys().map(|k| k.1).collect();
    days.sort_by_key(|d| std::cmp::Reverse(expected.iter().filter(|(k, _)| k.1 == *d).count()));
    days.truncate(3);
    days.extend(["2026-03-08", "2026-11-01"].map(|d| d.parse::<NaiveDate>().unwrap()));
    // The zone matters: counted by UTC day, some of these days would differ.
    let utc = signups_per_day(&api, Tz::UTC);
    assert!(days.iter().any(|d| expected
        .iter()
        .any(|(k, n)| k.1 == *d && utc.get(k) != Some(n))));
    let mut seen = 0;
    for day in days {
        let day_text = day.to_string();
        let data = api
            .report(&[("from", &day_text), ("to", &day_text), ("limit", "100")])
            .await;
        assert_eq!(
            (&data["display_currency"], &data["view"]),
            (&json!("USD"), &json!("user_acquisition"))
        );
        for (id, item) in by_id(&data) {
            let rows = expected.get(&(id.clone(), day)).copied().unwrap_or(0);
            assert_eq!(check_numbers(&item), rows, "{id} on {day}");
            seen += rows;
            assert_eq!(item["has_date_filter"], true);
        }
    }
    assert!(seen > 20, "{seen} sign-ups");
    // The aliases name the same days.
    let aliases = [("start_date", "2026-06-01"), ("end_date", "2026-06-30")];
    let named = [("from", "2026-06-01"), ("to", "2026-06-30")];
    assert_eq!(api.report(&aliases).await, api.report(&named).await);
}

#[tokio::test]
async fn days_sum_to_the_lifetime_totals() {
    let tz = Tz::Asia__Kolkata;
    let api = Api::start(project(32, tz)).await;
    let lifetime = by_id(&api.report(&[("limit", "100")]).await);
    let rows = api.sim.all_attributed_users();
    let mut sums: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut day = NaiveDate::from_ymd_opt(2026, 2, 14).unwrap();
    while day <= NaiveDate::from_ymd_opt(2026, 11, 16).unwrap() {
        let d = day.to_string();
        let query = [("from", d.as_str()), ("to", d.as_str()), ("limit", "100")];
        for (id, item) in by_id(&api.sim.reporting_campaigns(&query).unwrap()) {
            let sum = sums.entry(id).or_default();
            sum.0 += count(&item["sign-ups"]);
            sum.1 += count(&item["installs"]);
            sum.2 += money(&item["spend"]);
        }
        day += TimeDelta::days(1);
    }
    for (id, item) in &lifetime {
        assert_eq!(item["has_date_filter"], false);
        let totals = (
            count(&item["sign-ups"]),
            count(&item["installs"]),
            money(&item["spend"]),
        );
        assert_eq!(sums[id], totals, "{id}");
    }
    let all: u64 = sums.values().map(|s| s.0).sum();
    assert_eq!(all, rows.len() as u64);
}

/// Campaigns sorted by `created_at` ascending, over one day.
async fn by_creation(api: &Api, day: &str) -> Vec<Value> {
    let query = [("from", day), ("to", day), ("sort_field", "created_at")];
    let query = [&query[..], &[("sort_order", "ascending"), ("limit", "100")]].concat();
    api.report(&query).await["campaigns"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn campaigns_created_after_the_day_are_listed_with_zeros() {
    let tz = Tz::Asia__Kolkata;
    let api = Api::start(project(33, tz)).await;
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
    api.sim.set_now(Some(now));
    let url = format!("{}/create-campaign", api.server.base_url());
    let req = api.http.post(url).header("linkrunner-key", "sim-key");
    let resp = req.json(&json!({ "name": "Late" })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    let items = by_creation(&api, "2026-04-20").await;
    assert_eq!(items.len(), 9, "every campaign, whatever its creation day");
    let created: Vec<(String, u64)> = items
        .iter()
        .map(|c| {
            (
                c["created_at"].as_str().unwrap().to_string(),
                c["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
    let day_end: DateTime<Utc> = "2026-04-20T18:30:00Z".parse().unwrap();
    let late: Vec<&Value> = items
        .iter()
        .filter(|c| {
            c["created_at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
                >= day_end
        })
        .collect();
    assert!(late.len() >= 2 && late.iter().any(|c| c["name"] == "Late"));
    for item in late {
        let zeros = [
            "clicks",
            "installs",
            "sign-ups",
            "uninstalls",
            "suspicious_installs",
        ];
        assert!(zeros.iter().all(|k| item[k] == "0"), "{item}");
        let dollars = ["revenue", "spend", "cost_per_install", "cost_per_signup"];
        assert!(dollars.iter().all(|k| item[k] == "$0.00"), "{item}");
        assert_eq!(
            (&item["conversion"], &item["roas"]),
            (&json!("0.00%"), &json!("0.00"))
        );
        assert_eq!(item["adSets"], json!([]));
    }

    // A sign-up through the SDK counts on its project day at once.
    let link = link_of(&api, "Late");
    let init = json!({ "install_instance_id": "i-1", "link": link });
    assert_eq!(api.client("init", init).await, StatusCode::ACCEPTED);
    let signup = json!({ "install_instance_id": "i-1", "user_data": { "id": "u_late" } });
    assert_eq!(api.client("trigger", signup).await, StatusCode::OK);
    let today = by_creation(&api, "2026-12-01").await;
    let late = today.iter().find(|c| c["name"] == "Late").unwrap();
    assert_eq!(late["sign-ups"], "1");
    assert!(count(&late["installs"]) >= 1);
}

/// The link of the campaign named `name`.
fn link_of(api: &Api, name: &str) -> String {
    let campaigns = api.sim.campaigns();
    let c = campaigns.iter().find(|c| c["name"] == name).unwrap();
    c["link"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn ad_sets_split_the_campaign_by_the_rows_naming_them() {
    let api = Api::start(project(34, Tz::UTC)).await;
    let data = api.report(&[("limit", "100")]).await;
    let mut with_sets = 0;
    for (id, item) in by_id(&data) {
        let rows = api.sim.attributed_users(&id);
        let sets = item["adSets"].as_array().unwrap();
        assert!(sets.len() <= 3);
        with_sets += usize::from(!sets.is_empty());
        let (mut signups, mut installs) = (0, 0);
        for set in sets {
            let named = rows.iter().filter(|r| r["ad_set_id"] == set["id"]).count();
            assert_eq!(check_numbers(set), named as u64, "{set}");
            signups += named as u64;
            installs += count(&set["installs"]);
            let creatives = set["adCreatives"].as_array().unwrap();
            let creative_signups: u64 = creatives.iter().map(check_numbers).sum();
            assert!(creative_signups <= named as u64);
            assert!(creatives
                .iter()
                .all(|c| c["type"].is_string() && c.get("deeplink").is_some()));
        }
        assert!(signups <= count(&item["sign-ups"]) && installs <= count(&item["installs"]));
    }
    assert!(with_sets > 0);
}

#[tokio::test]
async fn pages_sort_and_views() {
    let api = Api::start(project(35, Tz::Asia__Kolkata)).await;
    let mut seen = Vec::new();
    for page in ["1", "2", "3"] {
        let data = api.report(&[("page", page), ("limit", "3")]).await;
        let expected =
            json!({ "total": 8, "pages": 3, "page": page.parse::<u64>().unwrap(), "limit": 3 });
        assert_eq!(data["pagination"], expected);
        seen.extend(data["campaigns"].as_array().unwrap().clone());
    }
    let installs: Vec<(u64, u64)> = seen
        .iter()
        .map(|c| (count(&c["installs"]), c["id"].as_u64().unwrap()))
        .collect();
    let ordered = installs
        .windows(2)
        .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1));
    assert!(ordered, "installs descending, then by id: {installs:?}");
    let mut ids: Vec<u64> = installs.iter().map(|i| i.1).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every campaign once");
    let created = |order: &'static str| {
        let query = [("sort_field", "created_at"), ("sort_order", order)];
        let data = api.sim.reporting_campaigns(&query).unwrap();
        let items = data["campaigns"].as_array().unwrap().clone();
        items
            .iter()
            .map(|c| c["created_at"].clone())
            .collect::<Vec<_>>()
    };
    let (mut newest_first, oldest_first) = (created("descending"), created("ascending"));
    newest_first.reverse();
    assert_eq!(newest_first, oldest_first);
    let text = |v: &Value| v.as_str().unwrap().to_string();
    assert!(oldest_first.windows(2).all(|w| text(&w[0]) < text(&w[1])));
    assert_eq!(api.report(&[]).await["pagination"]["limit"], 10);

    for bad in [
        ("limit", "101"),
        ("limit", "0"),
        ("limit", "ten"),
        ("view", "organic"),
        ("from", "01/05/2026"),
    ] {
        let (status, _, body) = api.report_with(&[bad], "sim-key").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
    }
    let (_, _, body) = api.report_with(&[("limit", "101")], "sim-key").await;
    assert_eq!(
        body["msg"],
        "Limit 101 exceeds maximum allowed value of 100."
    );

    let retargeting = api
        .report(&[("view", "retargeting"), ("limit", "100")])
        .await;
    assert_eq!(retargeting["view"], "retargeting");
    for item in retargeting["campaigns"].as_array().unwrap() {
        for k in ["reinstalls", "reengagements", "sign-ups", "clicks"] {
            count(&item[k]);
        }
        money(&item["cost_per_reinstall"]);
        assert!(item.get("installs").is_none() && item.get("cost_per_install").is_none());
    }
}

#[tokio::test]
async fn late_numbers_change_a_past_day() {
    let api = Api::start(project(36, Tz::Asia__Kolkata)).await;
    let day = [
        ("from", "2026-05-10"),
        ("to", "2026-06-10"),
        ("limit", "100"),
    ];
    let before = by_id(&api.report(&day).await);
    let url = format!("http://{}/__sim/reporting/revision", api.server.addr);
    let resp = api.http.post(url).send().await.unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "revision": 1 })
    );
    let after = by_id(&api.report(&day).await);
    let mut changed = 0;
    for (id, b) in &before {
        let a = &after[id];
        assert_eq!(a["sign-ups"], b["sign-ups"]);
        if count(&b["sign-ups"]) > 0 {
            assert!(count(&a["installs"]) > count(&b["installs"]), "{id}");
            changed += 1;
        }
    }
    assert!(changed > 0);
    assert_eq!(api.sim.bump_reporting_revision(), 2);
}
