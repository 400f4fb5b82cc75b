//! A loopback client of `GET /get-attribution-result`, and the answers expected from the rows.

// Each test file uses a part of it.
#![allow(dead_code)]

use linkrunner_sim::{SimConfig, SimServer, Simulator};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;

pub type Query<'a> = &'a [(&'a str, &'a str)];

pub struct Api {
    pub http: Client,
    pub server: SimServer,
    pub sim: Simulator,
}

impl Api {
    pub async fn start(config: SimConfig) -> Api {
        let sim = Simulator::new(config);
        let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = Client::new();
        Api { http, server, sim }
    }

    /// A look-up with `key`; the body is `Null` when it is not JSON, and a 204's must be empty.
    pub async fn lookup_with(&self, query: Query<'_>, key: &str) -> (StatusCode, Value) {
        let url = format!("{}/get-attribution-result", self.server.base_url());
        let req = self
            .http
            .get(url)
            .query(query)
            .header("linkrunner-key", key);
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        if status == StatusCode::NO_CONTENT {
            assert!(bytes.is_empty(), "a 204 has no body");
        }
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn lookup(&self, query: Query<'_>) -> (StatusCode, Value) {
        self.lookup_with(query, "sim-key").await
    }

    /// The `data` of a look-up that must find an attribution.
    pub async fn found(&self, query: Query<'_>) -> Value {
        let (status, body) = self.lookup(query).await;
        assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
        assert_eq!(body["msg"], "Attribution result retrieved successfully.");
        assert_eq!(body["status"], 200);
        body["data"].clone()
    }

    /// A GET under /api/v1 with the right key; the body is `Null` when it is not JSON.
    pub async fn get(&self, path: &str, query: Query<'_>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.server.base_url());
        let req = self.http.get(url).query(query);
        let resp = req
            .header("linkrunner-key", "sim-key")
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /reporting/campaigns` with `key`: the status, the `Retry-After` header and the body
    /// (`Null` when it is not JSON).
    pub async fn report_with(
        &self,
        query: Query<'_>,
        key: &str,
    ) -> (StatusCode, Option<String>, Value) {
        let url = format!("{}/reporting/campaigns", self.server.base_url());
        let req = self
            .http
            .get(url)
            .query(query)
            .header("linkrunner-key", key);
        let resp = req.send().await.unwrap();
        let retry_after = resp.headers().get("retry-after");
        let retry_after = retry_after.map(|v| v.to_str().unwrap().to_string());
        let status = resp.status();
        (
            status,
            retry_after,
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// The `data` of a reporting request that must succeed.
    pub async fn report(&self, query: Query<'_>) -> Value {
        let (status, _, body) = self.report_with(query, "sim-key").await;
        assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
        assert_eq!(body["msg"], "Campaigns fetched successfully");
        body["data"].clone()
    }

    /// A client (device-side) call; the answer's status.
    pub async fn client(&self, name: &str, mut body: Value) -> StatusCode {
        body["token"] = json!("sim-token");
        let url = format!("{}/{name}", self.server.client_url());
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        resp.status()
    }

    /// `GET /__sim/stats`.
    pub async fn stats(&self) -> Value {
        let url = format!("http://{}/__sim/stats", self.server.addr);
        let resp = self.http.get(url).send().await.unwrap();
        resp.json().await.unwrap()
    }
}

/// Each key's latest rows by `attributed_at` (several when they tie), over `rows` as served.
pub fn latest_by(
    rows: &[Value],
    keys: impl Fn(&Value) -> Vec<String>,
) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for row in rows {
        for key in keys(row) {
            let latest = out.entry(key).or_default();
            let at = |r: &Value| r["attributed_at"].as_str().unwrap().to_string();
            match latest.first().map(at) {
                Some(t) if t > at(row) => {}
                Some(t) if t == at(row) => latest.push(row.clone()),
                _ => *latest = vec![row.clone()],
            }
        }
    }
    out
}

pub fn user_id(row: &Value) -> Vec<String> {
    row["user_data"]["id"]
        .as_str()
        .map(String::from)
        .into_iter()
        .collect()
}

/// The row's GAID and IDFA, when set.
pub fn ad_ids(row: &Value) -> Vec<String> {
    let device = &row["user_data"]["device_data"];
    let ids = ["gaid", "idfa"].map(|k| device[k].as_str().filter(|s| !s.is_empty()));
    ids.into_iter().flatten().map(String::from).collect()
}

/// Asserts that a look-up's `data` is the result of one of `rows`.
pub fn assert_answers(data: &Value, rows: &[Value]) {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(String::from);
    let answers = |row: &Value| {
        let ads = [
            "ad_set_id",
            "ad_set_name",
            "ad_creative_id",
            "ad_creative_name",
        ];
        data["display_id"] == row["campaign_display_id"]
            && data["campaign_name"] == row["campaign_name"]
            && ads.iter().all(|k| data[k] == row[k])
            && data["ad_network"] == json!(text(&row["ad_channel"]))
            && data["attribution_type"] == "INORGANIC"
    };
    assert!(rows.iter().any(answers), "{data} answers none of {rows:?}");
}

/// Asserts the organic shape: no campaign, no ad, keywords as "".
pub fn assert_organic(data: &Value) {
    let nulls = [
        "campaign_name",
        "display_id",
        "deeplink",
        "domain_name",
        "ad_set_id",
        "ad_set_name",
        "ad_creative_id",
        "ad_creative_name",
        "ad_network",
    ];
    for k in nulls {
        assert_eq!(data[k], Value::Null, "{k} of {data}");
    }
    assert_eq!(
        (&data["keyword_id"], &data["keyword_name"]),
        (&json!(""), &json!(""))
    );
    assert_eq!(data["attribution_type"], "ORGANIC");
}
