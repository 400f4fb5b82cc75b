//! What `GET /reporting/campaigns` refuses: over its own limit (429, apart from the Data APIs),
//! a wrong key (401) and a suspended billing account (402); and the stats that count them.

mod common;

use common::Api;
use linkrunner_sim::{ReportingLimit, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const DAY: [(&str, &str); 2] = [("from", "2026-05-01"), ("to", "2026-05-01")];

#[tokio::test]
async fn one_request_a_minute_and_the_second_waits_sixty_seconds() {
    let api = Api::start(SimConfig::small(41)).await;
    let (first, retry, _) = api.report_with(&DAY, "sim-key").await;
    assert_eq!((first, retry), (StatusCode::OK, None));
    let page_two = [&DAY[..], &[("page", "2")]].concat();
    let (second, retry, body) = api.report_with(&page_two, "sim-key").await;
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("60"));
    let refusal = json!({ "msg": "Rate limit exceeded. Please try again later.", "status": 429 });
    assert_eq!(body, refusal);
    // The Data APIs are not held back by it.
    assert_eq!(api.get("/campaigns", &[]).await.0, StatusCode::OK);
    let stats = api.stats().await;
    let counts = [
        "reporting_requests",
        "reporting_rate_limited",
        "rate_limited",
    ];
    let counts = counts.map(|k| stats[k].as_u64().unwrap());
    assert_eq!(counts, [2, 1, 1], "{stats}");
    assert_eq!(api.sim.stats().reporting_rate_limited, 1);
}

#[tokio::test]
async fn a_raised_limit_lets_requests_through_and_a_window_ends() {
    let many = ReportingLimit {
        requests: 50,
        window: Duration::from_secs(1),
        retry_after_secs: 1,
    };
    let api = Api::start(SimConfig {
        reporting_limit: Some(many),
        ..SimConfig::small(42)
    })
    .await;
    for _ in 0..2 {
        assert_eq!(api.report_with(&DAY, "sim-key").await.0, StatusCode::OK);
    }
    // Three a second: of four at once one is refused, and once the second is over one passes.
    let url = format!("http://{}/__sim/reporting/limit", api.server.addr);
    let body = json!({ "requests": 3, "window_ms": 1000, "retry_after_secs": 1 });
    let resp = api.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api.report_with(&DAY, "sim-key").await);
    }
    let refused = statuses
        .iter()
        .filter(|s| s.0 == StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.clone().all(|s| s.1.as_deref() == Some("1")));
    assert!(
        refused.count() >= 1,
        "at most three of four pass in a second"
    );
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(api.report_with(&DAY, "sim-key").await.0, StatusCode::OK);

    let off = api.http.post(&url).json(&Value::Null).send().await.unwrap();
    assert_eq!(off.status(), StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(api.report_with(&DAY, "sim-key").await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_wrong_key_is_401_and_a_suspended_account_402() {
    let api = Api::start(SimConfig {
        reporting_billing_suspended: true,
        reporting_limit: None,
        ..SimConfig::small(43)
    })
    .await;
    let (status, _, body) = api.report_with(&DAY, "wrong-key").await;
    assert_eq!(
        (status, &body["msg"]),
        (StatusCode::UNAUTHORIZED, &json!("Unauthorized access."))
    );

    let (status, _, body) = api.report_with(&DAY, "sim-key").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["status"], 402);
    assert!(body["payment_link"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    // The Data APIs go on.
    assert_eq!(api.get("/campaigns", &[]).await.0, StatusCode::OK);

    let url = format!("http://{}/__sim/reporting/billing", api.server.addr);
    let settle = api.http.post(&url).json(&json!({ "suspended": false }));
    assert_eq!(settle.send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(api.report_with(&DAY, "sim-key").await.0, StatusCode::OK);
    api.sim.set_reporting_billing_suspended(true);
    assert_eq!(
        api.report_with(&DAY, "sim-key").await.0,
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(api.sim.stats().reporting_requests, 4);
}
