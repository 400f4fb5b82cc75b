//! The simulator's webhooks, received by a real HTTP server on loopback that records what it
//! gets and answers as each test tells it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use linkrunner_sim::{
    Outcome, SimConfig, SimServer, SimStats, Simulator, WebhookConfig, WebhookEvent, WebhookFaults,
};
use reqwest::Client;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: only there so a broken sender fails the test instead of hanging it.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The fields of the webhook page's table.
const DOCUMENTED: [&str; 19] = [
    "event_type",
    "user_id",
    "campaign_id",
    "campaign_name",
    "network_name",
    "ad_channel",
    "attributed_on",
    "installed_at",
    "store_click_at",
    "link",
    "app_version",
    "gaid",
    "idfa",
    "name",
    "phone",
    "email",
    "additional_data",
    "meta_campaign_details",
    "google_campaign_details",
];

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    key: Option<String>,
    content_type: Option<String>,
    body: Value,
    status: u16,
}

/// The answer to a body seen for the `n`th time (from 0), and how long to sit on it first.
type Policy = dyn Fn(&Value, usize) -> (u16, Duration) + Send + Sync;

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    policy: Arc<Policy>,
}

/// A receiver serving on a free loopback port; it stops with the test's runtime.
async fn receiver(
    policy: impl Fn(&Value, usize) -> (u16, Duration) + Send + Sync + 'static,
) -> (String, Receiver) {
    let r = Receiver {
        got: Arc::default(),
        policy: Arc::new(policy),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

/// Answers 200 at once.
async fn acknowledging() -> (String, Receiver) {
    receiver(|_, _| (200, Duration::ZERO)).await
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |k: &str| headers.get(k).map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, stall) = {
        let mut got = r.got.lock().unwrap();
        let seen = got.iter().filter(|g| g.body == body).count();
        let (status, stall) = (r.policy)(&body, seen);
        got.push(Got {
            at: Instant::now(),
            key: header("linkrunner-key"),
            content_type: header("content-type"),
            body,
            status,
        });
        (status, stall)
    };
    tokio::time::sleep(stall).await;
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// A target with fast retries, so give-ups come in milliseconds.
fn fast(url: &str) -> WebhookConfig {
    let ms = Duration::from_millis;
    WebhookConfig {
        retry_delays: vec![ms(5), ms(10), ms(20)],
        ..WebhookConfig::new(url, "hook-key")
    }
}

struct Sim {
    sim: Simulator,
    server: SimServer,
    http: Client,
}

impl Sim {
    async fn start(seed: u64, webhook: Option<WebhookConfig>) -> Sim {
        let sim = Simulator::new(SimConfig {
            webhook,
            ..SimConfig::small(seed)
        });
        let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Sim {
            sim,
            server,
            http: Client::new(),
        }
    }

    /// A client (device-side) call that must succeed.
    async fn client(&self, name: &str, mut body: Value) {
        body["token"] = json!("sim-token");
        let url = format!("{}/{name}", self.server.client_url());
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{name}: {}", resp.status());
    }

    async fn init(&self, iid: &str, device: Value, link: Option<&str>) {
        let body = json!({ "install_instance_id": iid, "device_data": device, "link": link,
            "app_version": "3.2.1", "platform": "ANDROID" });
        self.client("init", body).await;
    }

    async fn sign_up(&self, iid: &str, user: Value, data: Value) {
        let body = json!({ "install_instance_id": iid, "user_data": user, "data": data });
        self.client("trigger", body).await;
    }

    /// Creates campaign `id` (named in capitals); its link.
    async fn create(&self, id: &str) -> String {
        let url = format!("{}/create-campaign", self.server.base_url());
        let body = json!({ "name": id.to_uppercase(), "custom_display_id": id });
        let req = self.http.post(url).header("linkrunner-key", "sim-key");
        let resp = req.json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        body["data"]["link"].as_str().unwrap().to_string()
    }

    /// Every row of a campaign, over the Data API.
    async fn rows(&self, id: &str) -> Vec<Value> {
        let url = format!("{}/attributed-users", self.server.base_url());
        let query = [("display_id", id), ("limit", "1000")];
        let req = self.http.get(url).query(&query);
        let resp = req
            .header("linkrunner-key", "sim-key")
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        body["data"]["users"].as_array().unwrap().clone()
    }

    /// Waits until every delivery has ended; the events.
    async fn settled(&self) -> Vec<WebhookEvent> {
        assert!(
            self.sim.wait_for_webhooks(HANG_GUARD).await,
            "deliveries never ended"
        );
        self.sim.webhook_events()
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://{}/__sim/{path}", self.server.addr);
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

/// `n` organic installs, with GAIDs `g-0`, `g-1`, ...
async fn installs(s: &Sim, n: usize) {
    for i in 0..n {
        s.init(&format!("i-{i}"), json!({ "gaid": format!("g-{i}") }), None)
            .await;
    }
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn events_have_the_documented_shape_and_headers() {
    let (url, hook) = acknowledging().await;
    let s = Sim::start(1, Some(fast(&url))).await;
    let link = format!("{}&utm_source=meta_ads", s.create("spring-K1").await);
    s.init("i-1", json!({ "gaid": "gaid-1", "idfa": "" }), Some(&link))
        .await;
    // An app open is no new install.
    s.init("i-1", json!({ "gaid": "gaid-1" }), Some(&link))
        .await;
    s.init("i-2", json!({ "idfa": "IDFA-2" }), None).await;
    let user = json!({ "id": "u_1", "name": "Ines Falk", "email": "ines@example.net",
        "phone": "+15550107788" });
    let data =
        json!({ "referral_code": "FRIEND9", "device_data": { "gaid": "gaid-1", "brand": "x" } });
    s.sign_up("i-1", user, data).await;
    let events = s.settled().await;

    let got = hook.got();
    assert_eq!(got.len(), 3, "{got:?}");
    let mut documented: Vec<String> = DOCUMENTED.iter().map(|k| k.to_string()).collect();
    documented.sort();
    for g in &got {
        assert_eq!(g.content_type.as_deref(), Some("application/json"));
        assert_eq!(g.key.as_deref(), Some("hook-key"));
        assert_eq!(sorted_keys(&g.body), documented);
        for k in ["attributed_on", "installed_at"] {
            let t = g.body[k].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.len() == 24,
                "{k}: {t}"
            );
        }
    }
    let bodies: Vec<&Value> = got.iter().map(|g| &g.body).collect();
    let listed: Vec<&Value> = events.iter().map(|e| &e.body).collect();
    assert_eq!(bodies, listed, "the listing holds what was sent, in order");
    assert!(events
        .iter()
        .all(|e| e.outcome == Outcome::Acknowledged && e.attempts.len() == 1));

    let (attributed, organic, signup) = (&got[0].body, &got[1].body, &got[2].body);
    let expected = [
        ("event_type", json!("install")),
        ("user_id", Value::Null),
        ("campaign_id", json!("spring-K1")),
        ("campaign_name", json!("SPRING-K1")),
        ("network_name", json!("LINKRUNNER")),
        ("link", json!(link)),
        ("app_version", json!("3.2.1")),
        ("gaid", json!("gaid-1")),
        ("idfa", Value::Null),
        ("name", Value::Null),
        ("email", Value::Null),
        ("additional_data", Value::Null),
        ("meta_campaign_details", Value::Null),
    ];
    for (k, v) in &expected {
        assert_eq!(&attributed[k], v, "{k}");
    }
    assert_eq!(attributed["attributed_on"], attributed["installed_at"]);
    assert!(attributed["store_click_at"].is_string());
    assert_eq!(
        (&organic["campaign_id"], &organic["campaign_name"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        (&organic["network_name"], &organic["link"]),
        (&json!("ORGANIC"), &Value::Null)
    );
    assert_eq!(
        (&organic["idfa"], &organic["gaid"]),
        (&json!("IDFA-2"), &Value::Null)
    );

    assert_eq!(signup["event_type"], "signup");
    assert_eq!(
        (&signup["user_id"], &signup["campaign_id"]),
        (&json!("u_1"), &json!("spring-K1"))
    );
    let person = ["name", "email", "phone"].map(|k| signup[k].as_str().unwrap());
    assert_eq!(person, ["Ines Falk", "ines@example.net", "+15550107788"]);
    let extra = &signup["additional_data"];
    assert_eq!(
        (&extra["id"], &extra["referral_code"]),
        (&json!("u_1"), &json!("FRIEND9"))
    );
    assert_eq!(extra["device_data"]["brand"], "x");
    assert_eq!(signup["installed_at"], attributed["installed_at"]);
}

#[tokio::test]
async fn a_signup_event_is_the_row_the_data_api_serves() {
    let (url, hook) = acknowledging().await;
    let s = Sim::start(2, Some(fast(&url))).await;
    let link = s.create("summer-K2").await;
    s.init("i-1", json!({ "gaid": "gaid-1" }), Some(&link))
        .await;
    s.sign_up("i-1", json!({ "id": "u_7", "name": "A" }), json!({}))
        .await;
    // A login: the same row, so the same attribution.
    s.sign_up("i-1", json!({ "id": "u_7", "name": "B" }), json!({}))
        .await;
    s.sign_up("i-1", json!({ "id": "u_8" }), json!({})).await;
    s.init("i-org", json!({ "gaid": "gaid-org" }), None).await;
    s.sign_up("i-org", json!({ "id": "u_org" }), json!({}))
        .await;
    let events = s.settled().await;
    let rows = s.rows("summer-K2").await;
    assert_eq!(rows.len(), 2);

    let got = hook.got();
    let signups: Vec<&Value> = got
        .iter()
        .map(|g| &g.body)
        .filter(|b| b["event_type"] == "signup")
        .collect();
    assert_eq!(signups.len(), 4);
    for event in signups.iter().filter(|e| e["campaign_id"] == "summer-K2") {
        let row = rows
            .iter()
            .find(|r| r["user_data"]["id"] == event["user_id"]);
        let row = row.unwrap_or_else(|| panic!("no row for {event}"));
        assert_eq!(event["campaign_id"], row["campaign_display_id"]);
        assert_eq!(event["attributed_on"], row["attributed_at"]);
        for k in ["installed_at", "store_click_at", "link", "campaign_name"] {
            assert_eq!(event[k], row[k], "{k}");
        }
        assert_eq!(event["gaid"], row["user_data"]["device_data"]["gaid"]);
    }
    let u7: Vec<&&Value> = signups.iter().filter(|e| e["user_id"] == "u_7").collect();
    assert_eq!(u7.len(), 2);
    assert_eq!(u7[0]["attributed_on"], u7[1]["attributed_on"]);
    assert_eq!((&u7[0]["name"], &u7[1]["name"]), (&json!("A"), &json!("B")));
    let organic = signups.iter().find(|e| e["user_id"] == "u_org").unwrap();
    assert_eq!(
        (&organic["campaign_id"], &organic["network_name"]),
        (&Value::Null, &json!("ORGANIC"))
    );
    assert!(organic["attributed_on"].is_string());
    let listed = events.iter().filter(|e| e.event_type == "signup");
    let keys: Vec<(Option<&str>, Option<&str>)> = listed
        .map(|e| (e.user_id.as_deref(), e.campaign_id.as_deref()))
        .collect();
    let expected = [
        ("u_7", Some("summer-K2")),
        ("u_7", Some("summer-K2")),
        ("u_8", Some("summer-K2")),
        ("u_org", None),
    ];
    assert_eq!(keys, expected.map(|(u, c)| (Some(u), c)));
}

#[tokio::test]
async fn failed_deliveries_retry_after_the_delays_then_give_up() {
    // The install of g-0 is always refused; g-1's is refused twice, then taken.
    let (url, hook) = receiver(|body, seen| match body["gaid"].as_str() {
        Some("g-0") => (500, Duration::ZERO),
        Some("g-1") if seen < 2 => ([503, 502][seen], Duration::ZERO),
        _ => (200, Duration::ZERO),
    })
    .await;
    let ms = Duration::from_millis;
    let delays = [ms(60), ms(120), ms(240)];
    let target = WebhookConfig {
        retry_delays: delays.to_vec(),
        ..WebhookConfig::new(&url, "hook-key")
    };
    let s = Sim::start(3, Some(target)).await;
    installs(&s, 2).await;
    let events = s.settled().await;

    let lost = &events[0];
    assert_eq!(lost.outcome, Outcome::Lost);
    let tries: Vec<(u32, Option<u16>)> =
        lost.attempts.iter().map(|a| (a.retry, a.status)).collect();
    assert_eq!(tries, [0, 1, 2, 3].map(|r| (r, Some(500))));
    assert!(lost
        .attempts
        .iter()
        .all(|a| a.error.as_deref() == Some("status 500")));
    let arrivals: Vec<Instant> = hook
        .got()
        .iter()
        .filter(|g| g.body["gaid"] == "g-0")
        .map(|g| g.at)
        .collect();
    assert_eq!(arrivals.len(), 4);
    for (pair, delay) in arrivals.windows(2).zip(delays) {
        assert!(pair[1] - pair[0] >= delay, "retried before {delay:?}");
    }
    let mut waited = Duration::ZERO;
    for (attempt, delay) in lost.attempts[1..].iter().zip(delays) {
        waited += delay;
        assert!(Duration::from_millis(attempt.sent_after_ms) >= waited);
    }

    let taken = &events[1];
    assert_eq!(taken.outcome, Outcome::Acknowledged);
    let statuses: Vec<Option<u16>> = taken.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(503), Some(502), Some(200)]);

    let w = s.sim.stats().webhooks;
    let counts = (
        w.events,
        w.sent,
        w.acknowledged,
        w.failed,
        w.retried,
        w.given_up,
        w.lost,
    );
    assert_eq!(counts, (2, 7, 1, 6, 5, 1, 1));
    assert_eq!(w.pending, 0);
}

#[tokio::test]
async fn refused_connections_and_timeouts_are_failures() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let s = Sim::start(4, Some(fast(&refused))).await;
    installs(&s, 1).await;
    let events = s.settled().await;
    assert_eq!(events[0].outcome, Outcome::Lost);
    assert_eq!(events[0].attempts.len(), 4);
    for a in &events[0].attempts {
        assert_eq!(a.status, None);
        assert!(a.error.as_deref().unwrap().starts_with("connect"), "{a:?}");
    }

    // A receiver that sits on every request far past the timeout.
    let (slow, _hook) = receiver(|_, _| (200, Duration::from_secs(600))).await;
    s.sim.set_webhook(Some(WebhookConfig {
        timeout: Duration::from_millis(200),
        retry_delays: vec![Duration::from_millis(5)],
        ..fast(&slow)
    }));
    s.init("i-slow", json!({ "gaid": "g-slow" }), None).await;
    let events = s.settled().await;
    assert_eq!(events[1].outcome, Outcome::Lost);
    let errors: Vec<Option<&str>> = events[1]
        .attempts
        .iter()
        .map(|a| a.error.as_deref())
        .collect();
    assert_eq!(errors, [Some("timeout"); 2]);
    let w = s.sim.stats().webhooks;
    assert_eq!((w.sent, w.failed, w.given_up, w.lost), (6, 6, 2, 2));
}

/// What a seed made of 40 installs under every fault: each event's faults and outcome, and
/// the GAIDs in the order the receiver got them.
async fn replay(
    seed: u64,
) -> (
    Vec<(linkrunner_sim::EventFaults, Outcome, usize)>,
    Vec<String>,
) {
    let (url, hook) = acknowledging().await;
    let faults = WebhookFaults {
        drop_rate: 0.25,
        double_rate: 0.25,
        delay_rate: 0.25,
        delay_max: Duration::from_millis(30),
        reorder_rate: 0.25,
        ..WebhookFaults::default()
    };
    let s = Sim::start(
        seed,
        Some(WebhookConfig {
            faults,
            ..fast(&url)
        }),
    )
    .await;
    installs(&s, 40).await;
    let events = s.settled().await;
    let fates = events
        .into_iter()
        .map(|e| (e.faults, e.outcome, e.attempts.len()))
        .collect();
    let mut gaids: Vec<String> = hook
        .got()
        .iter()
        .map(|g| g.body["gaid"].as_str().unwrap().to_string())
        .collect();
    // Delays race the line, so only the set of arrivals is the seed's, not their order.
    gaids.sort();
    (fates, gaids)
}

#[tokio::test]
async fn faults_replay_with_the_seed() {
    let first = replay(11).await;
    assert_eq!(replay(11).await, first);
    let (fates, _) = &first;
    let seen =
        |f: fn(&linkrunner_sim::EventFaults) -> bool| fates.iter().filter(|(x, ..)| f(x)).count();
    let counts = [
        seen(|f| f.dropped),
        seen(|f| f.doubled),
        seen(|f| f.delay_ms.is_some()),
        seen(|f| f.reordered),
    ];
    assert!(
        counts.iter().all(|&n| n > 0),
        "every fault drawn at least once: {counts:?}"
    );
    let other = replay(12).await;
    assert_ne!(other.0, first.0, "another seed, other faults");
}

#[tokio::test]
async fn dropped_events_are_never_sent_and_doubled_ones_twice() {
    let (url, hook) = acknowledging().await;
    let faults = WebhookFaults {
        drop_rate: 0.4,
        double_rate: 0.4,
        ..WebhookFaults::default()
    };
    let s = Sim::start(
        5,
        Some(WebhookConfig {
            faults,
            ..fast(&url)
        }),
    )
    .await;
    installs(&s, 30).await;
    let events = s.settled().await;
    let mut arrived: HashMap<String, usize> = HashMap::new();
    for g in hook.got() {
        *arrived
            .entry(g.body["gaid"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let (mut dropped, mut doubled) = (0, 0);
    for e in &events {
        let times = arrived
            .get(e.body["gaid"].as_str().unwrap())
            .copied()
            .unwrap_or(0);
        let expected = match (e.faults.dropped, e.faults.doubled) {
            (true, _) => 0,
            (false, true) => 2,
            (false, false) => 1,
        };
        assert_eq!(times, expected, "{e:?}");
        let outcome = if e.faults.dropped {
            Outcome::Dropped
        } else {
            Outcome::Acknowledged
        };
        assert_eq!(e.outcome, outcome);
        dropped += usize::from(e.faults.dropped);
        doubled += usize::from(e.faults.doubled);
    }
    assert!(
        dropped > 0 && doubled > 0,
        "{dropped} dropped, {doubled} doubled"
    );
    let w = s.sim.stats().webhooks;
    assert_eq!(
        (w.dropped, w.doubled, w.lost),
        (dropped as u64, doubled as u64, dropped as u64)
    );
}

#[tokio::test]
async fn delayed_events_wait_and_reordered_ones_follow_their_successor() {
    let (url, hook) = acknowledging().await;
    let faults = WebhookFaults {
        delay_rate: 0.3,
        delay_max: Duration::from_millis(300),
        ..WebhookFaults::default()
    };
    let s = Sim::start(
        6,
        Some(WebhookConfig {
            faults,
            ..fast(&url)
        }),
    )
    .await;
    installs(&s, 20).await;
    let events = s.settled().await;
    let delayed: Vec<&WebhookEvent> = events
        .iter()
        .filter(|e| e.faults.delay_ms.is_some())
        .collect();
    assert!(!delayed.is_empty());
    for e in delayed {
        assert!(
            e.attempts[0].sent_after_ms >= e.faults.delay_ms.unwrap(),
            "{e:?}"
        );
    }
    assert_eq!(hook.got().len(), 20);

    // Reordering alone: first requests go one at a time, so arrivals follow the queue.
    let (url, hook) = acknowledging().await;
    let faults = WebhookFaults {
        reorder_rate: 0.4,
        ..WebhookFaults::default()
    };
    let s = Sim::start(
        6,
        Some(WebhookConfig {
            faults,
            ..fast(&url)
        }),
    )
    .await;
    installs(&s, 20).await;
    let events = s.settled().await;
    let mut expected = Vec::new();
    let mut seq = 0;
    while seq < events.len() {
        if events[seq].faults.reordered {
            expected.extend([seq + 1, seq]);
            seq += 2;
        } else {
            expected.push(seq);
            seq += 1;
        }
    }
    let arrived: Vec<usize> = hook
        .got()
        .iter()
        .map(|g| g.body["gaid"].as_str().unwrap()[2..].parse().unwrap())
        .collect();
    assert_eq!(arrived, expected);
    let reordered = events.iter().filter(|e| e.faults.reordered).count() as u64;
    assert!(reordered > 0);
    assert_eq!(s.sim.stats().webhooks.reordered, reordered);
}

#[tokio::test]
async fn nothing_is_sent_without_a_target() {
    let (url, hook) = acknowledging().await;
    let s = Sim::start(7, None).await;
    let link = s.create("autumn-K3").await;
    s.init("i-1", json!({ "gaid": "g-1" }), Some(&link)).await;
    s.sign_up("i-1", json!({ "id": "u_1" }), json!({})).await;
    assert!(s.settled().await.is_empty());
    assert_eq!(s.sim.stats().webhooks, SimStats::default().webhooks);

    // Set over the control route, the target gets what comes next, and only that.
    let set = json!({ "url": url, "key": "k-route", "retry_delays_ms": [5] });
    let (code, _) = s.control(reqwest::Method::POST, "webhook", Some(set)).await;
    assert_eq!(code, 200);
    s.init("i-2", json!({ "gaid": "g-2" }), None).await;
    let (code, body) = s
        .control(reqwest::Method::GET, "webhook/wait?timeout_ms=60000", None)
        .await;
    assert_eq!((code, body), (200, json!({ "done": true, "pending": 0 })));
    let got = hook.got();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].body["gaid"].as_str(), got[0].key.as_deref()),
        (Some("g-2"), Some("k-route"))
    );

    let (code, _) = s
        .control(
            reqwest::Method::POST,
            "webhook",
            Some(json!({ "url": null })),
        )
        .await;
    assert_eq!(code, 200);
    s.init("i-3", json!({ "gaid": "g-3" }), None).await;
    s.sign_up("i-2", json!({ "id": "u_2" }), json!({})).await;
    assert!(s.sim.wait_for_webhooks(HANG_GUARD).await);
    assert_eq!(hook.got().len(), 1);
    let (code, listed) = s
        .control(reqwest::Method::GET, "webhook/events", None)
        .await;
    assert_eq!(code, 200);
    let listed: Vec<WebhookEvent> = serde_json::from_value(listed).unwrap();
    assert_eq!(listed, s.sim.webhook_events());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].install_instance_id.as_deref(), Some("i-2"));
    let bad = json!({ "url": "not a url" });
    assert_eq!(
        s.control(reqwest::Method::POST, "webhook", Some(bad))
            .await
            .0,
        400
    );
    assert_eq!(s.sim.webhook(), None, "a refused target changes nothing");
}

#[tokio::test]
async fn the_wait_has_a_deadline() {
    let (url, _hook) = receiver(|_, _| (500, Duration::ZERO)).await;
    let target = WebhookConfig {
        retry_delays: vec![Duration::from_secs(3600)],
        ..WebhookConfig::new(&url, "k")
    };
    let s = Sim::start(8, Some(target)).await;
    installs(&s, 1).await;
    let (code, body) = s
        .control(reqwest::Method::GET, "webhook/wait?timeout_ms=50", None)
        .await;
    assert_eq!((code, body), (504, json!({ "done": false, "pending": 1 })));
    assert!(!s.sim.wait_for_webhooks(Duration::from_millis(50)).await);
    assert_eq!(s.sim.webhook_events()[0].outcome, Outcome::Pending);
}

#[tokio::test]
async fn stats_add_up() {
    // g-0..g-4's events are always refused; every other body is refused the first time.
    let (url, hook) = receiver(|body, seen| {
        let gaid = body["gaid"].as_str().unwrap_or_default();
        let hopeless = ["g-0", "g-1", "g-2", "g-3", "g-4"].contains(&gaid);
        let status = if hopeless || (seen == 0 && body["event_type"] == "signup") {
            500
        } else {
            200
        };
        (status, Duration::ZERO)
    })
    .await;
    let faults = WebhookFaults {
        drop_rate: 0.2,
        double_rate: 0.3,
        delay_rate: 0.2,
        delay_max: Duration::from_millis(20),
        reorder_rate: 0.2,
        ..WebhookFaults::default()
    };
    let s = Sim::start(
        9,
        Some(WebhookConfig {
            faults,
            ..fast(&url)
        }),
    )
    .await;
    installs(&s, 20).await;
    for i in 0..20 {
        s.sign_up(
            &format!("i-{i}"),
            json!({ "id": format!("u_{i}") }),
            json!({}),
        )
        .await;
    }
    let events = s.settled().await;
    let w = s.sim.stats().webhooks;
    let got = hook.got();
    let ok = got
        .iter()
        .filter(|g| (200..300).contains(&g.status))
        .count() as u64;
    assert_eq!(w.events, events.len() as u64);
    assert_eq!(w.events, 40);
    assert_eq!(
        (w.sent, w.acknowledged, w.failed),
        (got.len() as u64, ok, got.len() as u64 - ok)
    );
    let deliveries = w.events - w.dropped + w.doubled;
    assert_eq!(w.acknowledged + w.given_up, deliveries);
    assert_eq!(w.sent, deliveries + w.retried);
    let outcome = |o: Outcome| events.iter().filter(|e| e.outcome == o).count() as u64;
    assert_eq!(w.lost, outcome(Outcome::Lost) + outcome(Outcome::Dropped));
    assert_eq!(w.dropped, outcome(Outcome::Dropped));
    assert_eq!(outcome(Outcome::Pending) + w.pending, 0);
    let attempts: usize = events.iter().map(|e| e.attempts.len()).sum();
    assert_eq!(w.sent, attempts as u64);
    let fault = |f: fn(&WebhookEvent) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    assert_eq!(w.doubled, fault(|e| e.faults.doubled));
    assert_eq!(w.delayed, fault(|e| e.faults.delay_ms.is_some()));
    assert_eq!(w.reordered, fault(|e| e.faults.reordered));
    // Each counter is exercised, so none of the sums above holds by being all zeros.
    let all = [
        w.dropped,
        w.doubled,
        w.delayed,
        w.reordered,
        w.retried,
        w.given_up,
        w.acknowledged,
    ];
    assert!(all.iter().all(|&n| n > 0), "{w:?}");
}

#[tokio::test]
async fn the_binary_pushes_to_the_target_of_its_flags() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (url, hook) = acknowledging().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--campaigns",
            "2",
            "--users",
            "10",
        ])
        .args([
            "--webhook-url",
            &url,
            "--webhook-key",
            "bin-key",
            "--webhook-retry-delays-ms",
            "5,5",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let base = line.strip_prefix("linkrunner-sim listening on ").unwrap();
    let root = base.strip_suffix("/api/v1").unwrap();
    let http = Client::new();
    let init = json!({ "token": "sim-token", "install_instance_id": "i-bin", "device_data": { "gaid": "g-bin" } });
    let resp = http
        .post(format!("{root}/api/client/init"))
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let wait = http
        .get(format!("{root}/__sim/webhook/wait?timeout_ms=60000"))
        .send()
        .await
        .unwrap();
    assert_eq!(wait.status(), StatusCode::OK);
    let stats: Value = http
        .get(format!("{root}/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &stats["webhooks"]["events"],
            &stats["webhooks"]["acknowledged"]
        ),
        (&json!(1), &json!(1))
    );
    let got = hook.got();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].key.as_deref(), got[0].body["gaid"].as_str()),
        (Some("bin-key"), Some("g-bin"))
    );
    child.kill().await.unwrap();
}
