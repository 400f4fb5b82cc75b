//! The simulator over loopback HTTP, as the sync job sees it.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use linkrunner_sim::{Faults, SimConfig, SimServer, Simulator};
use reqwest::{header::CONTENT_TYPE, Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// Query-string pairs.
type Query<'a> = &'a [(&'a str, &'a str)];

struct Api {
    http: Client,
    server: SimServer,
    sim: Simulator,
}

impl Api {
    async fn start(config: SimConfig) -> Api {
        let sim = Simulator::new(config);
        let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        Api {
            http: Client::new(),
            server,
            sim,
        }
    }

    /// A call under /api/v1; the body is `Null` when the answer is not JSON.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: Query<'_>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.server.base_url());
        let mut req = self.http.request(method, url).query(query);
        if let Some(key) = key {
            req = req.header("linkrunner-key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// A GET under /api/v1 whose answer the test reads itself.
    async fn raw(&self, path: &str, query: Query<'_>) -> reqwest::Result<Response> {
        let url = format!("{}{path}", self.server.base_url());
        let req = self.http.get(url).query(query);
        req.header("linkrunner-key", "sim-key").send().await
    }

    async fn get(&self, path: &str, query: Query<'_>) -> (StatusCode, Value) {
        self.call(Method::GET, path, query, None, Some("sim-key"))
            .await
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, path, &[], Some(body), Some("sim-key"))
            .await
    }

    async fn client(&self, name: &str, body: Value) -> StatusCode {
        let url = format!("{}/{name}", self.server.client_url());
        self.http
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn control(&self, name: &str, body: Value) {
        let url = format!("http://{}/__sim/{name}", self.server.addr);
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// Every row of a campaign (and window), page by page until a short page.
    async fn scan(&self, id: &str, limit: usize, window: Query<'_>) -> Vec<Value> {
        let (mut rows, size) = (Vec::new(), limit.to_string());
        for page in 1.. {
            let page = page.to_string();
            let mut query = vec![("display_id", id), ("page", &page), ("limit", &size)];
            query.extend_from_slice(window);
            let (status, body) = self.get("/attributed-users", &query).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let users = body["data"]["users"].as_array().unwrap().clone();
            assert_eq!(body["data"]["total_users"], users.len());
            let short = users.len() < limit;
            rows.extend(users);
            if short {
                break;
            }
        }
        rows
    }

    /// The campaign with the most rows.
    fn biggest(&self) -> String {
        let campaigns = self.sim.campaigns();
        let big = campaigns
            .iter()
            .max_by_key(|c| c["attributed_users"].as_u64());
        big.unwrap()["display_id"].as_str().unwrap().to_string()
    }
}

fn sorted(rows: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = rows.iter().map(Value::to_string).collect();
    out.sort();
    out
}

fn at(row: &Value) -> DateTime<Utc> {
    row["attributed_at"].as_str().unwrap().parse().unwrap()
}

fn msg(reply: (StatusCode, Value)) -> (u16, String) {
    (
        reply.0.as_u16(),
        reply.1["msg"].as_str().unwrap_or_default().into(),
    )
}

/// A time window in the query form the API takes.
fn window<'a>(start: &'a str, end: &'a str, tz: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("start_timestamp", start),
        ("end_timestamp", end),
        ("timezone", tz),
    ]
}

#[tokio::test]
async fn pages_cover_every_row_exactly_once() {
    let api = Api::start(SimConfig::small(3)).await;
    let id = &api.biggest();
    let all = api.sim.attributed_users(id);
    assert!(all.len() > 100);
    assert_eq!(sorted(&api.scan(id, 37, &[]).await), sorted(&all));

    let pages = all.len().div_ceil(37);
    let second = [("display_id", id.as_str()), ("page", "2"), ("limit", "37")];
    let (_, body) = api.get("/attributed-users", &second).await;
    let expected = json!({ "total": all.len(), "pages": pages, "page": 2, "limit": 37 });
    assert_eq!(body["data"]["pagination"], expected);
    let past = (pages + 1).to_string();
    let past = [
        ("display_id", id.as_str()),
        ("page", &past),
        ("limit", "37"),
    ];
    let (status, body) = api.get("/attributed-users", &past).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["users"], json!([]));

    let mut campaigns = Vec::new();
    for page in ["1", "2", "3"] {
        let (_, body) = api
            .get("/campaigns", &[("page", page), ("limit", "3")])
            .await;
        assert_eq!(body["data"]["pagination"]["total"], 8);
        campaigns.extend(body["data"]["campaigns"].as_array().unwrap().clone());
    }
    assert_eq!(campaigns, api.sim.campaigns());
}

#[tokio::test]
async fn window_bounds_are_inclusive_and_read_in_the_timezone() {
    let api = Api::start(SimConfig::small(4)).await;
    let id = &api.biggest();
    let all = api.sim.attributed_users(id);
    let t = at(&all[all.len() / 2]);
    let kolkata = FixedOffset::east_opt(19_800).unwrap();
    let wall = "%Y-%m-%dT%H:%M:%S%.3f";
    let utc = t.format(wall).to_string();
    let exact = api.scan(id, 1000, &window(&utc, &utc, "UTC")).await;
    assert!(!exact.is_empty() && exact.iter().all(|r| at(r) == t));
    let local = t.with_timezone(&kolkata).format(wall).to_string();
    let same = api
        .scan(id, 1000, &window(&local, &local, "Asia/Kolkata"))
        .await;
    assert_eq!(sorted(&same), sorted(&exact));
    let later = (t + TimeDelta::milliseconds(1)).format(wall).to_string();
    assert!(api
        .scan(id, 1000, &window(&later, &utc, "UTC"))
        .await
        .is_empty());

    // Thirty Kolkata days from a local midnight, against filtering the full list here.
    let lo = t.with_timezone(&kolkata).date_naive().and_hms_opt(0, 0, 0);
    let lo = lo.unwrap().and_local_timezone(kolkata).unwrap();
    let hi = lo + TimeDelta::days(30) - TimeDelta::milliseconds(1);
    let (from, to) = (lo.format(wall).to_string(), hi.format(wall).to_string());
    let got = api.scan(id, 100, &window(&from, &to, "Asia/Kolkata")).await;
    let expected: Vec<Value> = all
        .into_iter()
        .filter(|r| at(r) >= lo && at(r) <= hi)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(sorted(&got), sorted(&expected));
}

#[tokio::test]
async fn errors_follow_the_contract() {
    let api = Api::start(SimConfig::small(5)).await;
    let id = &api.biggest();
    let no_key = |method, path| api.call(method, path, &[], None, None);
    let reply = api.call(Method::GET, "/attributed-users", &[], None, Some("x"));
    assert_eq!(msg(reply.await), (401, "Authentication failed.".into()));
    let reply = no_key(Method::GET, "/campaigns").await;
    assert_eq!(msg(reply), (401, "Unauthorized access.".into()));
    let reply = no_key(Method::DELETE, "/campaigns/abc").await;
    assert_eq!(msg(reply), (401, "Server key missing!".into()));

    let page = "Invalid page number '0'. Page must be a positive integer.";
    let limit = "Limit 1001 exceeds maximum allowed value of 1000.";
    let domain = "Invalid domain 'x.example'. Domain not found for this project.";
    let nope = "https://go.example.org/?c=nope";
    let cases: [(&str, Query, u16, &str); 9] = [
        ("/attributed-users", &[], 422, "Required parameter missing."),
        (
            "/attributed-users",
            &[("display_id", "x")],
            404,
            "Resource not found.",
        ),
        (
            "/attributed-users",
            &[("display_id", id), ("page", "0")],
            422,
            page,
        ),
        (
            "/attributed-users",
            &[("display_id", id), ("limit", "1001")],
            422,
            limit,
        ),
        (
            "/attributed-users",
            &[("display_id", id), ("timezone", "Mars/Base")],
            400,
            "Invalid timezone format.",
        ),
        (
            "/attributed-users",
            &[("display_id", id), ("end_timestamp", "today")],
            400,
            "Invalid timestamp format.",
        ),
        (
            "/campaigns",
            &[("channel", "myspace")],
            400,
            "Invalid channel 'myspace'. Channel not found.",
        ),
        ("/campaigns", &[("domain", "x.example")], 400, domain),
        (
            "/campaigns",
            &[("link", nope)],
            400,
            "Invalid request parameters.",
        ),
    ];
    for (path, query, code, text) in cases {
        let reply = msg(api.get(path, query).await);
        assert_eq!(reply, (code, text.into()), "{path} {query:?}");
    }
    let link = format!("go.example.org?c={id}");
    let (_, body) = api.get("/campaigns", &[("link", &link)]).await;
    assert_eq!(body["data"]["campaigns"][0]["display_id"], id.as_str());
    assert_eq!(body["data"]["total_campaigns"], 1);

    let result = "/get-attribution-result";
    assert_eq!(api.get(result, &[]).await.0, StatusCode::BAD_REQUEST);
    let nobody = api.get(result, &[("user_id", "u_0")]).await;
    assert_eq!(nobody, (StatusCode::NO_CONTENT, Value::Null));
    let rows = api.sim.attributed_users(id);
    let user = rows.iter().find_map(|r| r["user_data"]["id"].as_str());
    let (status, body) = api.get(result, &[("user_id", user.unwrap())]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["display_id"].is_string());
}

#[tokio::test]
async fn rate_limit_and_injected_errors() {
    let faults = Faults {
        rate_limit_rps: Some(2.0),
        retry_after: true,
        ..Faults::default()
    };
    let api = Api::start(SimConfig {
        faults,
        ..SimConfig::small(6)
    })
    .await;
    let request = || {
        api.http
            .get(format!("{}/campaigns", api.server.base_url()))
            .header("linkrunner-key", "sim-key")
    };
    let mut limited = 0;
    for _ in 0..6 {
        let resp = request().send().await.unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(resp.headers()["retry-after"], "1");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                body,
                json!({ "msg": "Rate limit exceeded. Please try again later.", "status": 429 })
            );
        }
    }
    // Two pass at once; the loop is far quicker than the half second a new token takes.
    assert!((2..=4).contains(&limited), "{limited} limited");
    assert_eq!(api.sim.stats().rate_limited, limited);

    api.control("faults", json!({ "rate_limit_rps": 0.001 }))
        .await;
    assert_eq!(request().send().await.unwrap().status(), StatusCode::OK);
    let resp = request().send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_none());

    // The HTTP-date form: a date of whole seconds, one to two seconds on.
    api.control(
        "faults",
        json!({ "rate_limit_rps": 0.001, "retry_after_date": true }),
    )
    .await;
    let resp = request().send().await.unwrap();
    let resp = match resp.status() {
        StatusCode::OK => request().send().await.unwrap(),
        _ => resp,
    };
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let date = resp.headers()["retry-after"].to_str().unwrap();
    assert!(date.ends_with(" GMT"), "{date}");
    let wait = DateTime::parse_from_rfc2822(date).unwrap().to_utc() - Utc::now();
    assert!(
        (TimeDelta::zero()..=TimeDelta::seconds(2)).contains(&wait),
        "{date}: {wait}"
    );

    api.control("faults", json!({ "error_rate": 1.0 })).await;
    for _ in 0..5 {
        assert!(api.get("/campaigns", &[]).await.0.is_server_error());
    }
    assert_eq!(api.sim.stats().server_errors, 5);
    api.control("faults", json!({})).await;
    assert_eq!(api.get("/campaigns", &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn shift_rate_moves_rows_between_pages() {
    let api = Api::start(SimConfig::small(8)).await;
    let id = &api.biggest();
    api.sim.set_faults(Faults {
        shift_rate: 1.0,
        ..Faults::default()
    });
    let scanned = api.scan(id, 20, &[]).await;
    assert_eq!(scanned.len(), api.sim.attributed_users(id).len());
    assert_ne!(sorted(&scanned), sorted(&api.sim.attributed_users(id)));
}

fn signup(install: &str, user: &str, name: &str) -> Value {
    let user_data = json!({ "id": user, "name": name });
    json!({ "token": "sim-token", "install_instance_id": install, "user_data": user_data })
}

#[tokio::test]
async fn campaign_lifecycle_and_signups() {
    let api = Api::start(SimConfig::small(9)).await;
    let (id, path) = ("winter-K4", "/campaigns/winter-K4");
    let now: DateTime<Utc> = "2026-12-01T10:00:00.123Z".parse().unwrap();
    let later = now + TimeDelta::hours(1);
    api.control("clock", json!({ "now": "2026-12-01T11:00:00.123+01:00" }))
        .await;
    let listings = ["play-main"];
    let create = json!({ "name": "W", "custom_display_id": id, "store_listing_ids": listings });
    let (status, body) = api
        .send(Method::POST, "/create-campaign", create.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["data"]["created_at"], ts(now));
    let link = body["data"]["link"].as_str().unwrap().to_string();
    let duplicate = api.send(Method::POST, "/create-campaign", create).await;
    assert_eq!(duplicate.0, StatusCode::BAD_REQUEST);

    let gaid = "6f1d2c3b-4a5e-4f60-8b71-9c0d1e2f3a4b";
    let device = json!({ "gaid": gaid, "brand": "samsung" });
    let mut init = json!({ "token": "sim-token", "install_instance_id": "i-1", "link": link });
    init["device_data"] = device.clone();
    assert_eq!(api.client("init", init).await, StatusCode::ACCEPTED);
    let bad_token = json!({ "token": "bad" });
    assert_eq!(api.client("init", bad_token).await, StatusCode::BAD_REQUEST);
    let organic = json!({ "token": "sim-token", "install_instance_id": "i-2" });
    assert_eq!(api.client("init", organic).await, StatusCode::ACCEPTED);
    // The first link wins: a later deep link to another campaign does not move the install.
    let campaigns = api.sim.campaigns();
    let other = campaigns.iter().find(|c| c["display_id"] != id).unwrap()["link"].clone();
    let deeplink =
        json!({ "token": "sim-token", "install_instance_id": "i-1", "deeplink_url": other });
    assert_eq!(
        api.client("handle-deeplink", deeplink).await,
        StatusCode::OK
    );
    let first = signup("i-1", "u_new", "Ines");
    assert_eq!(api.client("trigger", first).await, StatusCode::OK);
    api.client("trigger", signup("i-2", "u_organic", "Org"))
        .await;
    api.sim.set_now(Some(later));
    api.client("trigger", signup("i-1", "u_new", "Ines Falk"))
        .await;
    let phone = json!({ "id": "u_new", "phone": "+15550107788" });
    let phone = json!({ "token": "sim-token", "user_data": phone });
    api.client("set-user-data", phone).await;

    // One row: the login updated it and kept its attributed_at; the organic signup made none.
    let rows = api.scan(id, 50, &[]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["attributed_at"], ts(now));
    assert_eq!(rows[0]["installed_at"], ts(now));
    assert_eq!(rows[0]["store_click_at"], ts(now));
    let user = &rows[0]["user_data"];
    assert_eq!(
        (&user["name"], &user["phone"]),
        (&json!("Ines Falk"), &json!("+15550107788"))
    );
    assert_eq!(user["device_data"], device);
    let organic = api.sim.all_attributed_users();
    assert!(organic.iter().all(|r| r["user_data"]["id"] != "u_organic"));
    let by_device = [("device_identifier", gaid)];
    let (_, body) = api.get("/get-attribution-result", &by_device).await;
    assert_eq!(body["data"]["display_id"], id);
    api.client("trigger", signup("i-1", "u_second", "Zara"))
        .await;
    let (_, body) = api.get("/campaigns", &[("link", &link)]).await;
    assert_eq!(body["data"]["campaigns"][0]["attributed_users"], 2);

    let (status, body) = api.send(Method::PATCH, path, json!({ "name": "W2" })).await;
    assert_eq!(
        (status, &body["data"]["update_at"]),
        (StatusCode::OK, &json!(ts(later)))
    );
    let (_, body) = api
        .send(Method::PUT, path, json!({ "active": false }))
        .await;
    assert_eq!(
        (&body["data"]["name"], &body["data"]["active"]),
        (&json!("W2"), &json!(false))
    );
    let rows = api.scan(id, 50, &[]).await;
    assert!(rows.iter().all(|r| r["campaign_name"] == "W2"));
    let (_, inactive) = api.get("/campaigns", &[("filter", "INACTIVE")]).await;
    let inactive = inactive["data"]["campaigns"].as_array().unwrap().clone();
    assert!(inactive.iter().any(|c| c["display_id"] == id));
    assert!(inactive.iter().all(|c| c["active"] == false));

    assert!(api.sim.set_store_listings(id, &["ios-beta"]));
    assert!(!api.sim.set_store_listings(id, &["no-such-listing"]));
    let listed = api
        .sim
        .campaigns()
        .into_iter()
        .find(|c| c["display_id"] == id);
    assert_eq!(
        listed.unwrap()["store_listings"][0]["store_listing_id"],
        "ios-beta"
    );

    let url = format!("{}{path}", api.server.base_url());
    let delete = api.http.delete(url).header("linkrunner-key", "sim-key");
    let resp = delete.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().len(), 0);
    let again = api.send(Method::DELETE, path, json!({})).await;
    assert_eq!(msg(again), (404, "Campaign not found!".into()));
    let gone = api.get("/attributed-users", &[("display_id", id)]).await;
    assert_eq!(gone.0, StatusCode::NOT_FOUND);
    let (_, body) = api.get("/campaigns", &[]).await;
    assert_eq!(body["data"]["pagination"]["total"], 8);

    let recreate = json!({ "name": "Winter again", "custom_display_id": id });
    let (status, _) = api.send(Method::POST, "/create-campaign", recreate).await;
    assert_eq!(status, StatusCode::CREATED);
    api.client("trigger", signup("i-1", "u_third", "Noah"))
        .await;
    let rows = api.scan(id, 50, &[]).await;
    assert!(
        rows.is_empty(),
        "old installs must not feed a re-created campaign"
    );
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn same_seed_gives_the_same_data() {
    let [a, b, c] = [11, 11, 12].map(|seed| Simulator::new(SimConfig::small(seed)));
    assert_eq!(a.campaigns(), b.campaigns());
    assert_eq!(a.all_attributed_users(), b.all_attributed_users());
    assert_ne!(a.campaigns(), c.campaigns());
    assert_eq!(a.all_attributed_users().len(), 600);
}

#[tokio::test]
async fn binary_prints_its_address_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--campaigns",
            "3",
            "--users",
            "40",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let base = line.strip_prefix("linkrunner-sim listening on ").unwrap();
    let get = Client::new().get(format!("{base}/campaigns"));
    let body: Value = get
        .header("linkrunner-key", "sim-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["pagination"]["total"], 3);

    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await;
    assert!(status.unwrap().unwrap().success());
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "exactly one line on stdout"
    );
}

/// What a client makes of an answer, read chunk by chunk: its status and a JSON, cut
/// (unparsable), HTML or broken body.
async fn outcome(mut resp: Response) -> String {
    let status = resp.status().as_u16();
    let kind = resp.headers().get(CONTENT_TYPE).map(|t| t.as_bytes());
    let html = kind.is_some_and(|t| t.starts_with(b"text/html"));
    let mut body = Vec::new();
    let kind = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            // reqwest files a body cut off mid-stream under "decode".
            Err(e) if e.is_body() || e.is_decode() => {
                break format!("broken after {} bytes", body.len())
            }
            Err(e) => panic!("{e:?}"),
            Ok(None) if html => break "html".into(),
            Ok(None) if serde_json::from_slice::<Value>(&body).is_ok() => break "json".into(),
            Ok(None) => break "cut".into(),
        }
    };
    format!("{status} {kind}")
}

async fn faulty(seed: u64, faults: Faults) -> Api {
    let api = Api::start(SimConfig::small(seed)).await;
    api.sim.set_faults(faults);
    api
}

#[tokio::test]
async fn storms_answer_429_until_they_end() {
    let api = Api::start(SimConfig::small(20)).await;
    api.control(
        "faults",
        json!({ "storm_rate": 0.2, "storm_len_ms": 3_600_000 }),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(api.raw("/campaigns", &[]).await.unwrap().status().as_u16());
    }
    let first = statuses.iter().position(|&s| s == 429).unwrap();
    assert!(statuses[..first].iter().all(|&s| s == 200));
    assert!(statuses[first..].iter().all(|&s| s == 429), "{statuses:?}");
    let stats = api.sim.stats();
    assert_eq!((stats.storms, stats.rate_limited), (1, 60 - first as u64));

    // A short storm ends (and the next request starts another); Retry-After as for the limit.
    let body = json!({ "storm_rate": 1.0, "storm_len_ms": 1000, "retry_after": true });
    api.control("faults", body).await;
    for _ in 0..2 {
        let resp = api.raw("/campaigns", &[]).await.unwrap();
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    assert_eq!(api.sim.stats().storms, 2);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    api.raw("/campaigns", &[]).await.unwrap();
    assert_eq!(api.sim.stats().storms, 3);
}

#[tokio::test]
async fn slow_reset_truncated_and_html_answers() {
    let api = Api::start(SimConfig::small(21)).await;
    let id = api.biggest();
    let page = [("display_id", id.as_str()), ("limit", "100")];
    let clean = api.raw("/attributed-users", &page).await.unwrap();
    let clean = clean.text().await.unwrap();

    api.control("faults", json!({ "slow_rate": 1.0, "slow_delay_ms": 3000 }))
        .await;
    let impatient = api.http.get(format!("{}/campaigns", api.server.base_url()));
    let impatient = impatient.header("linkrunner-key", "sim-key");
    let err = impatient.timeout(Duration::from_millis(300)).send().await;
    assert!(err.unwrap_err().is_timeout());

    api.control("faults", json!({ "reset_rate": 1.0 })).await;
    let resp = api.raw("/attributed-users", &page).await.unwrap();
    let half = format!("200 broken after {} bytes", clean.len() / 2);
    assert_eq!(
        outcome(resp).await,
        half,
        "headers, half the body, then a drop"
    );

    api.control("faults", json!({ "truncate_rate": 1.0 })).await;
    let resp = api.raw("/attributed-users", &page).await.unwrap();
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    let cut = resp.text().await.unwrap();
    assert!(cut.len() >= clean.len() / 2 - 3 && clean.starts_with(&cut));
    assert!(serde_json::from_str::<Value>(&cut).unwrap_err().is_eof());

    api.control("faults", json!({ "html_rate": 1.0 })).await;
    let resp = api.raw("/campaigns", &[]).await.unwrap();
    assert_eq!(outcome(resp).await, "200 html");
    // Only 200 GETs are spoiled: an error answer keeps its JSON.
    let missing = api.raw("/attributed-users", &[("display_id", "nope")]);
    assert_eq!(outcome(missing.await.unwrap()).await, "404 json");

    let s = api.sim.stats();
    assert_eq!((s.slow, s.resets, s.truncated, s.html), (1, 1, 1, 1));
}

#[tokio::test]
async fn churn_adds_and_removes_rows_inside_the_window_mid_scan() {
    let api = Api::start(SimConfig::small(22)).await;
    api.control("faults", json!({ "churn_rate": 1.0 })).await;
    let (end, now) = (
        SimConfig::small(22).end,
        "2026-09-15T00:00:00Z".parse().unwrap(),
    );
    api.sim.set_now(Some(now));
    let id = api.biggest();
    let before = api.sim.attributed_users(&id);
    let mut totals = Vec::new();
    for page in 1..=8 {
        let page = page.to_string();
        let mut query = vec![
            ("display_id", id.as_str()),
            ("page", &page),
            ("limit", "10"),
        ];
        query.extend(window("2026-03-01T00:00:00", "2026-12-31T00:00:00", "UTC"));
        let (_, body) = api.get("/attributed-users", &query).await;
        totals.push(body["data"]["pagination"]["total"].as_u64().unwrap());
    }
    let stats = api.sim.stats();
    assert_eq!(stats.rows_added + stats.rows_removed, 7);
    assert!(stats.rows_added > 0 && stats.rows_removed > 0, "{stats:?}");
    assert!(totals.windows(2).any(|w| w[0] != w[1]), "{totals:?}");

    let lo: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let after = api.sim.attributed_users(&id);
    let removed = api.sim.removed_rows();
    assert_eq!(removed.len() as u64, stats.rows_removed);
    assert!(removed
        .iter()
        .all(|r| before.contains(r) && !after.contains(r)));
    assert!(removed.iter().all(|r| (lo..=end).contains(&at(r))));
    let added: Vec<&Value> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(added.len() as u64, stats.rows_added);
    assert!(added
        .iter()
        .all(|r| (lo..=now).contains(&at(r)) && r["campaign_display_id"] == id));
    assert_eq!(
        api.sim.all_attributed_users().len(),
        600 + added.len() - removed.len()
    );
}

/// `row` without `attributed_at`, the field bad rows spoil.
fn without_at(row: &Value) -> Value {
    let mut row = row.clone();
    row.as_object_mut().unwrap().remove("attributed_at");
    row
}

#[tokio::test]
async fn drift_and_bad_rows_are_stable_per_row_and_spare_the_keys() {
    let faults = Faults {
        drift_rate: 0.3,
        bad_row_rate: 0.05,
        ..Faults::default()
    };
    let api = faulty(23, faults).await;
    let clean = Simulator::new(SimConfig::small(23));
    let (mut drifted, mut bad, mut served) = (0, 0, Vec::new());
    for c in clean.campaigns() {
        let id = c["display_id"].as_str().unwrap();
        let rows = api.scan(id, 1000, &[]).await;
        assert_eq!(
            rows,
            api.scan(id, 1000, &[]).await,
            "same page, same rendering"
        );
        for (row, plain) in rows.iter().zip(clean.attributed_users(id)) {
            assert_eq!(row["campaign_display_id"], plain["campaign_display_id"]);
            assert_eq!(row["user_data"]["id"], plain["user_data"]["id"]);
            match row.get("attributed_at").and_then(Value::as_str) {
                Some(t) if t.parse::<DateTime<Utc>>().is_ok() => {
                    assert_eq!(t, plain["attributed_at"]);
                }
                _ => bad += 1,
            }
            drifted += usize::from(without_at(row) != without_at(&plain));
        }
        served.extend(rows);
    }
    let stats = api.sim.stats();
    assert_eq!(
        (stats.drifted_rows, stats.bad_rows),
        (drifted as u64, bad as u64)
    );
    assert!(
        (120..=240).contains(&drifted) && (15..=50).contains(&bad),
        "{drifted} {bad}"
    );
    assert_eq!(sorted(&served), sorted(&api.sim.all_attributed_users()));
    let text = Value::Array(served).to_string();
    for sign in [
        r#""api_level":""#,
        "experiment_bucket",
        r#":"","#,
        "not-a-date",
    ] {
        assert!(text.contains(sign), "no {sign}");
    }

    let (_, body) = api.get("/campaigns", &[]).await;
    let campaigns = body["data"]["campaigns"].as_array().unwrap();
    assert_eq!(campaigns, &api.sim.campaigns());
    let pairs = campaigns.iter().zip(clean.campaigns());
    assert!(pairs
        .clone()
        .all(|(a, b)| a["display_id"] == b["display_id"]));
    assert!(pairs.clone().any(|(a, b)| *a != b));
}

/// Outcomes of a fixed request sequence, and what the faults left behind.
async fn replay(seed: u64) -> (Vec<String>, Value, Vec<Value>, Vec<Value>) {
    let faults = Faults {
        error_rate: 0.1,
        storm_rate: 0.05,
        slow_rate: 0.2,
        slow_delay: Duration::from_millis(1),
        reset_rate: 0.1,
        truncate_rate: 0.1,
        html_rate: 0.1,
        churn_rate: 0.3,
        ..Faults::default()
    };
    let api = faulty(seed, faults).await;
    api.sim.set_now(Some(SimConfig::small(seed).end));
    let id = api.biggest();
    let mut outcomes = Vec::new();
    for n in 0..60 {
        let page = (n % 6 + 1).to_string();
        let query = [
            ("display_id", id.as_str()),
            ("page", &page),
            ("limit", "15"),
        ];
        outcomes.push(outcome(api.raw("/attributed-users", &query).await.unwrap()).await);
    }
    let stats = serde_json::to_value(api.sim.stats()).unwrap();
    let sim = &api.sim;
    (
        outcomes,
        stats,
        sim.all_attributed_users(),
        sim.removed_rows(),
    )
}

#[tokio::test]
async fn same_seed_and_requests_give_the_same_faults() {
    let first = replay(24).await;
    assert_eq!(first, replay(24).await);
    assert_ne!(first.0, replay(25).await.0);
    for kind in ["200 json", "200 cut", "200 html", "200 broken", "429", "50"] {
        assert!(
            first.0.iter().any(|o| o.starts_with(kind)),
            "no {kind}: {:?}",
            first.0
        );
    }
}

/// Bounds of a time window, in UTC.
type Span = Option<(DateTime<Utc>, DateTime<Utc>)>;

/// A page as the simulator wrote it before rows were served from cached text: every row a JSON
/// tree (as `Simulator::attributed_users` still renders them), filtered, paged, and written out
/// with its envelope by serde_json.
fn reference_page(sim: &Simulator, id: &str, span: Span, page: usize, limit: usize) -> String {
    let inside = |r: &Value| span.is_none_or(|(s, e)| (s..=e).contains(&at(r)));
    let rows: Vec<Value> = sim
        .attributed_users(id)
        .into_iter()
        .filter(inside)
        .collect();
    let (total, pages) = (rows.len(), rows.len().div_ceil(limit));
    let users: Vec<Value> = rows
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    let msg = format!(
        "Successfully retrieved {total} attributed users for campaign {id}. \
        Showing page {page} of {pages}."
    );
    let pagination = json!({ "total": total, "pages": pages, "page": page, "limit": limit });
    let data = json!({ "total_users": users.len(), "users": users, "pagination": pagination });
    json!({ "msg": msg, "status": 200, "data": data }).to_string()
}

impl Api {
    /// Every page of `id` (and one past the end) in `span`, each compared with the reference
    /// page of the data set as it is right after the request (churn may have changed it).
    async fn assert_served_as_reference(&self, id: &str, span: Span) {
        let wall = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
        let bounds = span.map(|(s, e)| (wall(s), wall(e)));
        let pages = self.sim.attributed_users(id).len().div_ceil(37);
        for page in 1..=pages + 1 {
            let number = page.to_string();
            let mut query = vec![("display_id", id), ("page", &number), ("limit", "37")];
            if let Some((s, e)) = &bounds {
                query.extend(window(s, e, "UTC"));
            }
            let resp = self.raw("/attributed-users", &query).await.unwrap();
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
            let served = resp.text().await.unwrap();
            assert_eq!(
                served,
                reference_page(&self.sim, id, span, page, 37),
                "page {page}"
            );
        }
    }

    async fn assert_all_served_as_reference(&self, id: &str, span: Span) {
        self.assert_served_as_reference(id, None).await;
        self.assert_served_as_reference(id, span).await;
    }
}

#[tokio::test]
async fn served_bytes_equal_the_tree_rendering_through_changes() {
    let drift = Faults {
        drift_rate: 0.3,
        ..Faults::default()
    };
    let api = faulty(26, drift.clone()).await;
    // Churn adds rows up to now; a fixed clock makes them, and so the whole run, replay.
    api.sim.set_now(Some(SimConfig::small(26).end));
    let id = &api.biggest();
    let all = api.sim.attributed_users(id);
    let (a, b) = (at(&all[10]), at(&all[90]));
    let span = Some((a.min(b), a.max(b)));
    api.assert_all_served_as_reference(id, span).await;

    let rename = json!({ "name": "Renamed \"quoted\" ✓" });
    let (status, _) = api
        .send(Method::PATCH, &format!("/campaigns/{id}"), rename)
        .await;
    assert_eq!(status, StatusCode::OK);
    api.assert_all_served_as_reference(id, span).await;

    let user = all
        .iter()
        .find_map(|r| r["user_data"]["id"].as_str())
        .unwrap();
    let data = json!({ "id": user, "name": "Changed", "plan": { "tier": 2 } });
    let body = json!({ "token": "sim-token", "user_data": data });
    assert_eq!(api.client("set-user-data", body).await, StatusCode::OK);
    assert!(api
        .sim
        .attributed_users(id)
        .iter()
        .any(|r| r["user_data"]["plan"]["tier"] == 2));
    api.assert_all_served_as_reference(id, span).await;

    // A signup adds a row and a login on the same install changes it.
    let link = api
        .sim
        .campaigns()
        .into_iter()
        .find(|c| c["display_id"] == *id);
    let link = link.unwrap()["link"].clone();
    let init = json!({ "token": "sim-token", "install_instance_id": "i-9", "link": link });
    assert_eq!(api.client("init", init).await, StatusCode::ACCEPTED);
    api.client("trigger", signup("i-9", "u_sign", "Liam")).await;
    api.assert_served_as_reference(id, None).await;
    api.client("trigger", signup("i-9", "u_sign", "Liam Walsh"))
        .await;
    api.assert_served_as_reference(id, None).await;

    // New rendering faults re-render every row; churn and shifts change rows mid-scan.
    let faults = Faults {
        bad_row_rate: 0.1,
        ..drift.clone()
    };
    api.sim.set_faults(faults);
    api.assert_served_as_reference(id, None).await;
    api.sim.set_faults(Faults {
        churn_rate: 1.0,
        shift_rate: 0.5,
        ..drift
    });
    api.assert_all_served_as_reference(id, span).await;
    let stats = api.sim.stats();
    assert!(stats.rows_added > 0 && stats.rows_removed > 0, "{stats:?}");
}
