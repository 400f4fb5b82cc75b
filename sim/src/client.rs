//! The device-side client API on `/api/client`, tied to the campaigns as in §5 of the write-API
//! notes: an install that opened a campaign link and then signs up (`trigger`, in `signup`)
//! becomes a row of that campaign; an install without one stays organic, and so do the users
//! who sign up on it. A first `init` pushes the install webhook.

use crate::body::{object, parse_body, text, Body};
use crate::clock::ts;
use crate::data::Campaign;
use crate::install::Install;
use crate::project::link_display_id;
use crate::reply::{fail, ok, ApiError, Reply};
use crate::state::{Simulator, State};
use crate::webhook::event::{install_event, Attribution};
use crate::webhook::send::push;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use rand::Rng;
use serde_json::{json, Value};

/// Parses a client body and checks its `token`; the body is the only credential here.
pub(crate) fn client_body(
    st: &State,
    bytes: &[u8],
    bad_token: StatusCode,
) -> Result<Body, ApiError> {
    let Some(body) = parse_body(bytes) else {
        return fail(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    if text(&body, "token") == Some(st.config.project_token.as_str()) {
        Ok(body)
    } else {
        fail(bad_token, "Invalid token")
    }
}

impl State {
    /// Records an install's device data (first one kept) and a campaign link it opened; true
    /// when this is the install's first `init`.
    fn touch_install(&mut self, body: &Body, link: Option<&str>, is_init: bool) -> bool {
        let Some(iid) = text(body, "install_instance_id") else {
            return false;
        };
        let now = self.now();
        let resolved = link
            .and_then(link_display_id)
            .and_then(|id| self.campaigns.get(&id))
            .map(|c| ((c.uid, c.display_id.clone()), c.name().to_string()));
        let install = self.installs.entry(iid.to_string()).or_default();
        let first = is_init && install.installed_at.is_none();
        if is_init {
            install.installed_at.get_or_insert(now);
            let version = text(body, "app_version").map(String::from);
            install.app_version = version.or(install.app_version.take());
        }
        if install.device_data.is_none() {
            install.device_data = body.get("device_data").filter(|d| d.is_object()).cloned();
        }
        if let (None, Some((campaign, name))) = (&install.campaign, resolved) {
            install.campaign = Some(campaign);
            install.campaign_name = name;
            install.link = link.map(String::from);
            install.store_click_at = Some(now);
        }
        self.lookup.add_install(iid, install, &self.campaigns);
        first
    }

    /// A copy of the install `iid`, or a blank one when it is unknown.
    pub(crate) fn install_of(&self, iid: Option<&str>) -> Install {
        let install = iid.and_then(|i| self.installs.get(i));
        install.cloned().unwrap_or_default()
    }

    /// The live campaign an install is attributed to (not a later one reusing the display id).
    pub(crate) fn install_campaign(&mut self, install: &Install) -> Option<&mut Campaign> {
        let (uid, id) = install.campaign.as_ref()?;
        self.campaigns.get_mut(id).filter(|c| c.uid == *uid)
    }
}

/// `POST /api/client/init`: 202 and a non-envelope body; deduplicated on `install_instance_id`.
pub(crate) async fn init(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    if st.touch_install(&body, text(&body, "link"), true) {
        let iid = text(&body, "install_instance_id").unwrap_or_default();
        st.push_install(&sim, iid);
    }
    let processing_id = uuid::Builder::from_random_bytes(st.id_rng.random()).into_uuid();
    let reply = json!({
        // Text, as uuid's serde form is: the sim does not turn on uuid's `serde` feature.
        "processing_id": processing_id.to_string(),
        "status": "accepted",
        "message": "Install event accepted for processing",
        "success": true,
    });
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

impl State {
    /// The install webhook of a first `init`: its live campaign, else organic, as at `init`.
    fn push_install(&mut self, sim: &Simulator, iid: &str) {
        if self.config.webhook.is_none() {
            return;
        }
        let install = self.install_of(Some(iid));
        let Some(at) = install.installed_at else {
            return;
        };
        let campaign = self.install_campaign(&install);
        let campaign = campaign.map(|c| (c.display_id.clone(), c.name().to_string()));
        let campaign = campaign.as_ref().map(|(id, n)| (id.as_str(), n.as_str()));
        let event = install_event(&install, &Attribution { campaign, at });
        push(sim, self, event, Some(iid));
    }
}

/// `POST /api/client/handle-deeplink`: a link seen before the first `init` still counts.
pub(crate) async fn handle_deeplink(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    let url = text(&body, "deeplink_url").unwrap_or_default();
    st.touch_install(&body, Some(url), false);
    let ours = link_display_id(url).is_some();
    let data = json!({ "deeplink": url, "is_linkrunner": ours, "processing": false });
    ok(StatusCode::OK, "Deeplink processed", data)
}

/// `POST /api/client/attribution-data`: the install's campaign, or the organic shape.
pub(crate) async fn attribution_data(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::UNAUTHORIZED)?;
    let install = st.install_of(text(&body, "install_instance_id"));
    let device = install.device_data.clone().unwrap_or_default();
    let ad_id = |k: &str| {
        device
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut data =
        json!({ "deeplink": null, "campaign_data": null, "attribution_source": "ORGANIC" });
    data["gaid"] = json!(ad_id("gaid"));
    data["idfa"] = json!(ad_id("idfa"));
    st.add_campaign_data(&install, &mut data);
    ok(
        StatusCode::OK,
        "Attribution data retrieved successfully!",
        data,
    )
}

impl State {
    /// Fills in the campaign of an attributed install; an organic one is left as it is.
    fn add_campaign_data(&mut self, install: &Install, data: &mut Value) {
        let Some((_, id)) = &install.campaign else {
            return;
        };
        // A deleted campaign keeps its cached result (the real one is cached for 24 hours).
        let live = self
            .install_campaign(install)
            .map(|c| (c.name().to_string(), c.deeplink.clone()));
        let (name, deeplink) = live.unwrap_or((install.campaign_name.clone(), None));
        data["deeplink"] = json!(deeplink);
        data["campaign_data"] = json!({
            "id": id, "name": name, "type": "INORGANIC",
            "ad_network": null, "group_name": null, "asset_group_name": null, "asset_name": null,
            "installed_at": install.installed_at.map(ts),
            "store_click_at": install.store_click_at.map(ts),
        });
        // Undocumented for plain links; tests should not depend on it.
        data["attribution_source"] = json!("LINKRUNNER");
    }
}

/// `POST /api/client/set-user-data`: merges `user_data` into every row of that user id.
pub(crate) async fn set_user_data(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    let user = object(body.get("user_data"));
    let Some(id) = user.get("id").and_then(Value::as_str).map(String::from) else {
        return fail(StatusCode::BAD_REQUEST, "user_data.id is required");
    };
    if user.contains_key("device_data") {
        // Rows may now carry other advertising ids.
        st.lookup.invalidate();
    }
    for c in st.campaigns.values_mut() {
        let (ad, rows) = c.rows_mut();
        for row in rows.filter(|r| r.user_id().as_deref() == Some(id.as_str())) {
            if let Some(Value::Object(data)) = row.fields_mut(&ad).get_mut("user_data") {
                data.extend(user.clone());
            }
        }
    }
    ok(StatusCode::OK, "User data updated", Value::Null)
}
