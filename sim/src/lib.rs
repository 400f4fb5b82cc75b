//! Linkrunner API simulator: a test double of the read Data APIs, the Reporting API, the
//! campaign write APIs and the device-side client API, serving a synthetic data set generated
//! from a seed, and pushing Linkrunner's install and signup webhooks to a receiver.
//!
//! All state sits behind one mutex; handlers never hold it across an `.await`.
//!
//! Modules only import from layers below their own, from the bottom up: plain helpers (`hash`,
//! `clock`, `bucket`, `quota`, `reply`, `body`); settings (`project`, `config`, `stats`); the
//! data model (`counter`, `row`, `rows`, `data`, `install`), its look-up index (`lookup`) and its
//! rendering (`drift`); the data set (`generate`); the state (`state`, `direct`); HTTP pieces
//! (`paging`, `page`); the handlers (`faults`, `read`, `attribution`, `reporting`, `write`,
//! `client`, `signup`, `control`); and this file with `cli` on top.

mod attribution;
mod body;
mod bucket;
pub mod cli;
mod client;
mod clock;
mod config;
mod control;
mod counter;
mod data;
mod direct;
mod drift;
mod faults;
mod generate;
mod hash;
mod install;
mod lookup;
mod page;
mod paging;
mod project;
mod quota;
mod read;
mod reply;
mod reporting;
mod row;
mod rows;
mod signup;
mod state;
mod stats;
mod webhook;
mod write;

use axum::routing::{get, patch, post};
use axum::{middleware, Router};
use state::State;
use std::net::SocketAddr;
use tokio::sync::oneshot;

pub use config::{Faults, ReportingLimit, SimConfig};
pub use control::FaultArgs;
pub use counter::Counter;
pub use direct::CounterState;
pub use state::Simulator;
pub use stats::{SimStats, WebhookStats};
pub use webhook::{
    check_url, Attempt, EventFaults, Outcome, WebhookArgs, WebhookConfig, WebhookEvent,
    WebhookFaults,
};

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
        Simulator::from_state(State::new(config))
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
            .route("/api/v1/reporting/campaigns", get(reporting::campaigns))
            .route(
                "/api/v1/get-attribution-result",
                get(attribution::attribution_result),
            )
            .route("/api/v1/create-campaign", post(write::create_campaign))
            .route(
                "/api/v1/campaigns/{display_id}",
                patch(write::edit_campaign)
                    .put(write::edit_campaign)
                    .delete(write::delete_campaign),
            )
            .layer(middleware::from_fn_with_state(self.clone(), faults::guard));
        let device = Router::new()
            .route("/api/client/init", post(client::init))
            .route("/api/client/handle-deeplink", post(client::handle_deeplink))
            .route(
                "/api/client/attribution-data",
                post(client::attribution_data),
            )
            .route("/api/client/trigger", post(signup::trigger))
            .route("/api/client/set-user-data", post(client::set_user_data));
        v1.merge(device)
            .merge(control::routes())
            .with_state(self.clone())
    }
}
