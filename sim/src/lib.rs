//! Linkrunner API simulator: a test double of the read Data APIs, the campaign write APIs and
//! the device-side client API, serving a synthetic data set generated from a seed.
//!
//! All state sits behind one mutex; handlers never hold it across an `.await`.

pub mod cli;
mod clock;
mod control;
mod counter;
mod data;
mod drift;
mod faults;
mod generate;
mod page;
mod read;
mod row;
mod rows;
mod write;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{middleware, Json, Router};
use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use data::Campaign;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

pub use control::FaultArgs;
pub use counter::Counter;

/// Link domains of the simulated project; the first one is its primary domain.
pub(crate) const PROJECT_DOMAINS: [&str; 2] = ["go.example.org", "links.example.com"];

/// What to simulate: data set size, dates, credentials and faults.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice (data set, generated ids, faults).
    pub seed: u64,
    /// Number of campaigns generated.
    pub campaigns: usize,
    /// Number of attributed-user rows generated, across all campaigns.
    pub users: usize,
    /// Spread the rows evenly over the campaigns, instead of one campaign taking ~30% and the
    /// rest a random share each.
    pub even: bool,
    /// Earliest campaign `created_at` and `attributed_at`.
    pub start: DateTime<Utc>,
    /// Latest `attributed_at` generated.
    pub end: DateTime<Utc>,
    /// Accepted `linkrunner-key` header on `/api/v1/*`.
    pub api_key: String,
    /// Accepted body `token` on `/api/client/*`.
    pub project_token: String,
    /// Share of generated campaigns whose `attributed_users` counter lies (reads 0, is frozen
    /// below the rows, counts installs without signup, or lags), each kind equally often.
    pub counter_lie_rate: f64,
    /// Faults injected into `/api/v1/*`.
    pub faults: Faults,
}

/// Faults injected into `/api/v1/*` responses. Every rate is a fraction 0..1 drawn from the
/// seeded fault RNG (drift and bad rows from a seeded hash of each record), so a seed replays.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Global token-bucket limit in requests per second; `None` turns it off.
    pub rate_limit_rps: Option<f64>,
    /// Send `Retry-After: 1` on 429s.
    pub retry_after: bool,
    /// Fraction of GET requests answered 500, 502 or 503.
    pub error_rate: f64,
    /// Fraction of `attributed-users` requests with page > 1 that first reshuffle the rows.
    pub shift_rate: f64,
    /// Delay added before every response.
    pub latency: Duration,
    /// Fraction of requests that start a storm: every request gets 429 for `storm_len`.
    pub storm_rate: f64,
    pub storm_len: Duration,
    /// Fraction of GET responses delayed by `slow_delay` on top of `latency`.
    pub slow_rate: f64,
    pub slow_delay: Duration,
    /// Fraction of 200 GET answers whose connection drops after part of the body.
    pub reset_rate: f64,
    /// Fraction of 200 GET answers whose JSON is cut in half but ends cleanly.
    pub truncate_rate: f64,
    /// Fraction of 200 GET answers replaced by a proxy's HTML error page (still 200).
    pub html_rate: f64,
    /// Fraction of `attributed-users` requests with page > 1 that first add or remove a row of
    /// that campaign inside the request's window.
    pub churn_rate: f64,
    /// Fraction of rows and campaigns rendered with schema drift (never their key fields).
    pub drift_rate: f64,
    /// Fraction of rows whose `attributed_at` is missing, null or not a date.
    pub bad_row_rate: f64,
    /// Campaigns whose `attributed-users` requests always answer 500 (a campaign that keeps
    /// failing).
    pub failing_campaigns: Vec<String>,
}

/// Request counters since the simulator started.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimStats {
    /// Every request that reached `/api/v1/*`.
    pub requests: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered with an injected 5xx.
    pub server_errors: u64,
    /// `GET /attributed-users` requests, whatever their answer.
    pub attributed_users_requests: u64,
    /// `GET /campaigns` requests, whatever their answer.
    pub campaigns_requests: u64,
    /// 429 storms started (their 429s count in `rate_limited`).
    pub storms: u64,
    /// Responses delayed by `slow_delay`.
    pub slow: u64,
    /// Connections reset mid-body.
    pub resets: u64,
    /// Bodies cut short.
    pub truncated: u64,
    /// HTML pages served instead of JSON.
    pub html: u64,
    /// Rows inserted and removed by churn.
    pub rows_added: u64,
    pub rows_removed: u64,
    /// Rows of the current data set rendered with drift, and with an unreadable `attributed_at`.
    pub drifted_rows: u64,
    pub bad_rows: u64,
}

impl SimConfig {
    /// A small data set for tests: 8 campaigns, 600 rows.
    pub fn small(seed: u64) -> Self {
        SimConfig {
            seed,
            campaigns: 8,
            users: 600,
            ..SimConfig::default()
        }
    }
}

impl Default for SimConfig {
    /// The demo data set: 25 campaigns, 5,000 rows between 2026-02-15 and 2026-11-15.
    fn default() -> Self {
        SimConfig {
            seed: 42,
            campaigns: 25,
            users: 5_000,
            even: false,
            start: Utc.with_ymd_and_hms(2026, 2, 15, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap(),
            api_key: "sim-key".into(),
            project_token: "sim-token".into(),
            counter_lie_rate: 0.2,
            faults: Faults::default(),
        }
    }
}

/// Everything the simulator knows; guarded by the mutex in [`Simulator`].
pub(crate) struct State {
    pub(crate) config: SimConfig,
    /// Live campaigns by display id; a deleted campaign is removed together with its rows.
    pub(crate) campaigns: BTreeMap<String, Campaign>,
    pub(crate) installs: HashMap<String, write::Install>,
    pub(crate) clock: Option<DateTime<Utc>>,
    pub(crate) bucket: faults::TokenBucket,
    /// End of the current 429 storm.
    pub(crate) storm_until: Option<std::time::Instant>,
    /// Rows churn took away, as they were served.
    pub(crate) removed: Vec<Value>,
    pub(crate) fault_rng: ChaCha8Rng,
    /// Draws generated display ids and processing ids, so those are reproducible too.
    pub(crate) id_rng: ChaCha8Rng,
    pub(crate) stats: SimStats,
    pub(crate) next_uid: u64,
}

impl State {
    /// Simulated time, cut to milliseconds like every timestamp the API renders.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now).trunc_subsecs(3)
    }

    /// Live campaigns in listing order: a seeded hash of the display id, not by name or date.
    pub(crate) fn ordered(&self) -> Vec<&Campaign> {
        let seed = self.config.seed;
        let mut all: Vec<&Campaign> = self.campaigns.values().collect();
        all.sort_by_cached_key(|c| (hash_str(seed, &c.display_id), c.display_id.clone()));
        all
    }

    pub(crate) fn take_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }
}

/// The simulator; clones share one state.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<State>>,
}

/// A running simulator server; dropping it or calling [`SimServer::shutdown`] stops it.
pub struct SimServer {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
}

impl SimServer {
    /// Base URL of the Data and campaign APIs, `http://{addr}/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// Base URL of the client (device-side) API, `http://{addr}/api/client`.
    pub fn client_url(&self) -> String {
        format!("http://{}/api/client", self.addr)
    }

    /// Stops accepting connections and lets in-flight requests finish.
    pub fn shutdown(self) {
        let _ = self.stop.send(());
    }
}

impl Simulator {
    /// Generates the data set from `config.seed`; the same config always gives the same data.
    pub fn new(config: SimConfig) -> Simulator {
        let campaigns = generate::generate(&config);
        let next_uid = (config.campaigns + config.users) as u64;
        let state = State {
            campaigns: campaigns
                .into_iter()
                .map(|c| (c.display_id.clone(), c))
                .collect(),
            installs: HashMap::new(),
            clock: None,
            bucket: faults::TokenBucket::default(),
            storm_until: None,
            removed: Vec::new(),
            fault_rng: ChaCha8Rng::seed_from_u64(mix(config.seed ^ 0xFA17)),
            id_rng: ChaCha8Rng::seed_from_u64(mix(config.seed ^ 0x1D5)),
            stats: SimStats::default(),
            next_uid,
            config,
        };
        Simulator {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Locks the state; a panicked holder cannot leave it half-written, so poison is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `addr` (port 0 picks a free port) and serves on a spawned tokio task.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = self.router();
        tokio::spawn(async move {
            let stopped = async {
                // Either an explicit shutdown or the SimServer being dropped ends the wait.
                let _ = stopped.await;
            };
            let served = axum::serve(listener, app).with_graceful_shutdown(stopped);
            if let Err(e) = served.await {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        tracing::info!(%addr, "linkrunner simulator serving");
        Ok(SimServer { addr, stop })
    }

    /// All routes: `/api/v1/*` (behind auth and faults), `/api/client/*` and `/__sim/*`.
    pub fn router(&self) -> Router {
        let v1 = Router::new()
            .route("/api/v1/campaigns", get(read::campaigns))
            .route("/api/v1/attributed-users", get(read::attributed_users))
            .route(
                "/api/v1/get-attribution-result",
                get(read::attribution_result),
            )
            .route("/api/v1/create-campaign", post(write::create_campaign))
            .route(
                "/api/v1/campaigns/{display_id}",
                patch(write::edit_campaign)
                    .put(write::edit_campaign)
                    .delete(write::delete_campaign),
            )
            .layer(middleware::from_fn_with_state(self.clone(), faults::guard));
        let client = Router::new()
            .route("/api/client/init", post(write::init))
            .route("/api/client/handle-deeplink", post(write::handle_deeplink))
            .route(
                "/api/client/attribution-data",
                post(write::attribution_data),
            )
            .route("/api/client/trigger", post(write::trigger))
            .route("/api/client/set-user-data", post(write::set_user_data));
        v1.merge(client)
            .merge(control::routes())
            .with_state(self.clone())
    }

    /// Every live campaign, in listing order, exactly as `GET /campaigns` renders it.
    pub fn campaigns(&self) -> Vec<Value> {
        let st = self.lock();
        st.ordered()
            .iter()
            .map(|c| st.config.render_campaign(c))
            .collect()
    }

    /// Every row of a campaign as `GET /attributed-users` renders it (drift and bad rows
    /// included); empty if unknown or deleted.
    pub fn attributed_users(&self, display_id: &str) -> Vec<Value> {
        let st = self.lock();
        st.campaigns
            .get(display_id)
            .map(|c| {
                c.rows()
                    .iter()
                    .map(|r| st.config.render_row(c, r))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every row of every live campaign, as served.
    pub fn all_attributed_users(&self) -> Vec<Value> {
        let st = self.lock();
        let ordered = st.ordered();
        let rows = ordered
            .iter()
            .flat_map(|c| c.rows().iter().map(|r| st.config.render_row(c, r)));
        rows.collect()
    }

    /// Rows churn removed from the data set, rendered as they were served before removal.
    pub fn removed_rows(&self) -> Vec<Value> {
        self.lock().removed.clone()
    }

    /// Sets the simulated clock; `None` goes back to real time.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        self.lock().clock = now;
    }

    /// Replaces the faults; the rate limiter starts again with a full bucket and no storm.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.lock();
        let old = &st.config.faults;
        if (old.drift_rate, old.bad_row_rate) != (faults.drift_rate, faults.bad_row_rate) {
            // Served row texts were rendered with the old drift and bad-row rates.
            st.campaigns.values_mut().for_each(Campaign::forget_served);
        }
        st.config.faults = faults;
        st.bucket = faults::TokenBucket::default();
        st.storm_until = None;
    }

    /// Counters since start; drifted and bad rows are counted in the current data set.
    pub fn stats(&self) -> SimStats {
        let st = self.lock();
        let rows = || st.campaigns.values().flat_map(|c| c.rows().iter());
        SimStats {
            drifted_rows: rows().filter(|r| st.config.drifts(r)).count() as u64,
            bad_rows: rows().filter(|r| st.config.is_bad(r)).count() as u64,
            ..st.stats.clone()
        }
    }

    /// Test-only (no API does it): sets how a campaign's counter lies; false when the campaign
    /// is unknown.
    pub fn set_counter(&self, display_id: &str, counter: Counter) -> bool {
        let mut st = self.lock();
        st.campaigns
            .get_mut(display_id)
            .map(|c| c.counter = counter)
            .is_some()
    }

    /// Every live campaign's rows, counter and how the counter lies, in listing order.
    pub fn counters(&self) -> Vec<CounterState> {
        let st = self.lock();
        st.ordered()
            .iter()
            .map(|c| CounterState {
                display_id: c.display_id.clone(),
                rows: c.rows().len() as u64,
                counter: c.counter_value(),
                lie: c.counter,
            })
            .collect()
    }

    /// Test-only (no API does it): replaces a campaign's store listings and bumps `update_at`.
    /// False when the campaign or a listing id is unknown.
    pub fn set_store_listings(&self, display_id: &str, store_listing_ids: &[&str]) -> bool {
        let mut st = self.lock();
        let now = st.now();
        let Ok(listings) = data::listing_indexes(store_listing_ids) else {
            return false;
        };
        let Some(c) = st.campaigns.get_mut(display_id) else {
            return false;
        };
        c.store_listings = listings;
        c.update_at = now;
        true
    }
}

/// A campaign's true row count beside what its counter says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CounterState {
    pub display_id: String,
    pub rows: u64,
    pub counter: u64,
    pub lie: Counter,
}

/// What every handler returns.
pub(crate) type Reply = Result<Response, ApiError>;

/// An error answer: the envelope minus `data`, as the campaign-apis examples show.
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    pub(crate) fn new(code: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(code, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({ "msg": self.1, "status": self.0.as_u16() })),
        )
            .into_response()
    }
}

/// Shorthand for `Err(ApiError::new(code, msg))`.
pub(crate) fn fail<T>(code: StatusCode, msg: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::new(code, msg))
}

/// The success envelope `{"msg","status","data"}`.
pub(crate) fn ok(code: StatusCode, msg: &str, data: Value) -> Reply {
    let body = json!({ "msg": msg, "status": code.as_u16(), "data": data });
    Ok((code, Json(body)).into_response())
}

/// SplitMix64 finaliser: a fixed mix, so orders never depend on std's hasher or Rust version.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeded hash of a string, built on [`mix`].
pub(crate) fn hash_str(seed: u64, s: &str) -> u64 {
    s.bytes().fold(mix(seed), |h, b| mix(h ^ u64::from(b)))
}
