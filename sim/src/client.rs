//! The device-side client API on `/api/client`, tied to the campaigns as in §5 of the write-API
//! notes: an install that opened a campaign link and then signs up (`trigger`) becomes a row of
//! that campaign; an install without one stays organic, and so do the users who sign up on it.

use crate::body::{object, parse_body, text, Body};
use crate::clock::ts;
use crate::data::Campaign;
use crate::install::Install;
use crate::project::link_display_id;
use crate::reply::{fail, ok, ApiError, Reply};
use crate::row::{Row, AD_KEYS};
use crate::state::{Simulator, State};
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};

/// Parses a client body and checks its `token`; the body is the only credential here.
fn client_body(st: &State, bytes: &[u8], bad_token: StatusCode) -> Result<Body, ApiError> {
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
    /// Records an install's device data (first one kept) and a campaign link it opened.
    fn touch_install(&mut self, body: &Body, link: Option<&str>, is_init: bool) {
        let Some(iid) = text(body, "install_instance_id") else {
            return;
        };
        let now = self.now();
        let resolved = link
            .and_then(link_display_id)
            .and_then(|id| self.campaigns.get(&id))
            .map(|c| ((c.uid, c.display_id.clone()), c.name().to_string()));
        let install = self.installs.entry(iid.to_string()).or_default();
        if is_init {
            install.installed_at.get_or_insert(now);
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
    }

    /// A copy of the install `iid`, or a blank one when it is unknown.
    fn install_of(&self, iid: Option<&str>) -> Install {
        let install = iid.and_then(|i| self.installs.get(i));
        install.cloned().unwrap_or_default()
    }

    /// The live campaign an install is attributed to (not a later one reusing the display id).
    fn install_campaign(&mut self, install: &Install) -> Option<&mut Campaign> {
        let (uid, id) = install.campaign.as_ref()?;
        self.campaigns.get_mut(id).filter(|c| c.uid == *uid)
    }
}

/// `POST /api/client/init`: 202 and a non-envelope body; deduplicated on `install_instance_id`.
pub(crate) async fn init(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    st.touch_install(&body, text(&body, "link"), true);
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

/// `POST /api/client/trigger` (signup): on an install attributed to a live campaign, adds a row
/// for a new user id, or merges into the row of the same user id (a login); an organic install
/// makes no row.
pub(crate) async fn trigger(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    let iid = text(&body, "install_instance_id").map(String::from);
    let install = st.install_of(iid.as_deref());
    let drawn = (st.take_uid(), st.now());
    let campaign = st.install_campaign(&install);
    let campaign = campaign.map(|c| (c.display_id.clone(), c.deeplink.clone()));
    let deeplink = match campaign {
        Some((id, deeplink)) => {
            st.sign_up(&id, &install, iid, drawn, &body);
            deeplink
        }
        None => {
            st.sign_up_organically(iid.as_deref(), drawn, &body);
            None
        }
    };
    let data = json!({ "deeplink": deeplink.unwrap_or_default(), "trigger": true });
    ok(StatusCode::OK, "Trigger processed successfully", data)
}

impl State {
    /// A signup on an install of live campaign `id`, with a drawn row uid and the time.
    fn sign_up(
        &mut self,
        id: &str,
        install: &Install,
        iid: Option<String>,
        (uid, now): (u64, DateTime<Utc>),
        body: &Body,
    ) {
        let user = object(body.get("user_data"));
        let user_id = user.get("id").cloned().unwrap_or_default();
        let same = |r: &&mut Row| {
            r.install() == iid.as_deref()
                && r.user_data().and_then(|u| u.get("id")) == Some(&user_id)
        };
        let c = self
            .campaigns
            .get_mut(id)
            .expect("the install's campaign is live");
        let login = c.rows_mut().find(same);
        match login.and_then(|r| r.fields_mut().get_mut("user_data")) {
            // A login changes the user's details, never the attribution.
            Some(Value::Object(data)) => {
                if user.contains_key("device_data") {
                    self.lookup.invalidate();
                }
                data.extend(user);
            }
            _ => self.insert_row(id, signup_row(install, iid, uid, now, user, body)),
        }
    }

    /// A signup on an install without a live campaign makes no row; on one that `init`
    /// registered without a campaign, the user is remembered as organic.
    fn sign_up_organically(
        &mut self,
        iid: Option<&str>,
        (seq, now): (u64, DateTime<Utc>),
        body: &Body,
    ) {
        let user = body.get("user_data").and_then(|u| u.get("id"));
        let user = user.and_then(Value::as_str).filter(|u| !u.is_empty());
        let (Some(iid), Some(user)) = (iid, user) else {
            return;
        };
        let organic = |i: &&mut Install| i.installed_at.is_some() && i.campaign.is_none();
        if let Some(install) = self.installs.get_mut(iid).filter(organic) {
            install.sign_up_organically(user, now, seq);
            self.lookup.add_install(iid, install, &self.campaigns);
        }
    }
}

/// The row a signup makes: ad fields null (a plain link has no ad network), times from the
/// install, and device data from `init`, else from the trigger's `data.device_data`.
fn signup_row(
    install: &Install,
    iid: Option<String>,
    uid: u64,
    at: DateTime<Utc>,
    mut user: Body,
    body: &Body,
) -> Row {
    for key in ["id", "name", "email", "phone"] {
        user.entry(key).or_insert(Value::Null);
    }
    let sent = body.get("data").and_then(|d| d.get("device_data"));
    let device = install.device_data.clone().or_else(|| sent.cloned());
    user.insert("device_data".into(), device.unwrap_or_default());
    let mut fields: Body = AD_KEYS
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    fields.insert("link".into(), json!(install.link));
    fields.insert("installed_at".into(), json!(install.installed_at.map(ts)));
    fields.insert(
        "store_click_at".into(),
        json!(install.store_click_at.map(ts)),
    );
    fields.insert("user_data".into(), Value::Object(user));
    Row::new(uid, at, iid, fields)
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
    let rows = st.campaigns.values_mut().flat_map(|c| c.rows_mut());
    for row in rows.filter(|r| r.user_id() == Some(id.as_str())) {
        if let Some(Value::Object(data)) = row.fields_mut().get_mut("user_data") {
            data.extend(user.clone());
        }
    }
    ok(StatusCode::OK, "User data updated", Value::Null)
}
