//! Write APIs: campaign create/edit/delete on `/api/v1` and the device-side client API on
//! `/api/client`, tied together as in §5 of the write-API notes: an install that opened a
//! campaign link and then signs up (`trigger`) becomes a row of that campaign.

use super::clock::ts;
use super::data::{listing_indexes, Campaign, AD_KEYS, LISTINGS};
use super::generate::random_id;
use super::read::link_display_id;
use super::row::Row;
use super::{fail, ok, ApiError, Reply, Simulator, State, PROJECT_DOMAINS};
use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Map, Value};

type Body = Map<String, Value>;

/// A simulated app install, keyed by `install_instance_id`.
#[derive(Clone, Default)]
pub(crate) struct Install {
    /// First `init`; `None` while only `handle-deeplink` has been seen.
    installed_at: Option<DateTime<Utc>>,
    device_data: Option<Value>,
    /// (uid, display id) of the campaign the install was attributed to; the first link wins.
    campaign: Option<(u64, String)>,
    /// Name at attribution time, for `attribution-data` after the campaign is gone.
    campaign_name: String,
    link: Option<String>,
    store_click_at: Option<DateTime<Utc>>,
}

/// A JSON object, or an empty one for anything else.
fn object(v: Option<&Value>) -> Body {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn parse_body(bytes: &[u8]) -> Option<Body> {
    serde_json::from_slice(bytes).ok()
}

fn text<'a>(body: &'a Body, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

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
    let iid = text(&body, "install_instance_id");
    let install = iid
        .and_then(|i| st.installs.get(i))
        .cloned()
        .unwrap_or_default();
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
    if let Some((_, id)) = &install.campaign {
        // A deleted campaign keeps its cached result (the real one is cached for 24 hours).
        let live = st
            .install_campaign(&install)
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
    ok(
        StatusCode::OK,
        "Attribution data retrieved successfully!",
        data,
    )
}

/// `POST /api/client/trigger` (signup): on an install attributed to a live campaign, adds a row
/// for a new user id, or merges into the row of the same user id (a login).
pub(crate) async fn trigger(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    let user = object(body.get("user_data"));
    let iid = text(&body, "install_instance_id").map(String::from);
    let install = iid.as_ref().and_then(|i| st.installs.get(i));
    let install = install.cloned().unwrap_or_default();
    let (now, uid) = (st.now(), st.take_uid());
    let Some(c) = st.install_campaign(&install) else {
        // Organic installs sign up without making a row anywhere.
        let data = json!({ "deeplink": "", "trigger": true });
        return ok(StatusCode::OK, "Trigger processed successfully", data);
    };
    let user_id = user.get("id").cloned().unwrap_or_default();
    let same = |r: &&mut Row| {
        r.install() == iid.as_deref() && r.user_data().and_then(|u| u.get("id")) == Some(&user_id)
    };
    match c
        .rows_mut()
        .find(same)
        .and_then(|r| r.fields_mut().get_mut("user_data"))
    {
        // A login changes the user's details, never the attribution.
        Some(Value::Object(data)) => data.extend(user),
        _ => c.insert_row(signup_row(&install, iid, uid, now, user, &body)),
    }
    let data = json!({ "deeplink": c.deeplink.clone().unwrap_or_default(), "trigger": true });
    ok(StatusCode::OK, "Trigger processed successfully", data)
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
    let rows = st.campaigns.values_mut().flat_map(|c| c.rows_mut());
    for row in rows.filter(|r| r.user_id() == Some(id.as_str())) {
        if let Some(Value::Object(data)) = row.fields_mut().get_mut("user_data") {
            data.extend(user.clone());
        }
    }
    ok(StatusCode::OK, "User data updated", Value::Null)
}

/// `POST /api/v1/create-campaign`: 201 with the create shape; defaults as §3.1 of the notes.
pub(crate) async fn create_campaign(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let bad = |msg: &str| fail(StatusCode::BAD_REQUEST, msg);
    let body = parse_body(&bytes).unwrap_or_default();
    let Some(name) = text(&body, "name").filter(|n| !n.trim().is_empty()) else {
        return bad("Campaign name is required!");
    };
    let domain = match body.get("domain") {
        None | Some(Value::Null) => PROJECT_DOMAINS[0],
        Some(d) => match PROJECT_DOMAINS.iter().find(|p| d.as_str() == Some(**p)) {
            Some(p) => p,
            None => return bad("Domain not found in project"),
        },
    };
    let listings = store_listings(body.get("store_listing_ids"))?;
    let mut st = sim.lock();
    let display_id = match body.get("custom_display_id") {
        None | Some(Value::Null) => loop {
            let id = random_id(&mut st.id_rng, 10);
            if !st.campaigns.contains_key(&id) {
                break id;
            }
        },
        Some(Value::String(id)) if valid_id(id) && st.campaigns.contains_key(id) => {
            return bad("Campaign with this display ID already exists!");
        }
        Some(Value::String(id)) if valid_id(id) => id.clone(),
        Some(_) => return bad("Invalid custom_display_id!"),
    };
    let (uid, now) = (st.take_uid(), st.now());
    let mut c = Campaign::new(uid, display_id.clone(), name.to_string(), now);
    c.domain = Some(domain.to_string());
    c.store_listings = listings;
    c.deeplink = text(&body, "deeplink").map(String::from);
    let website = text(&body, "link_for_desktop_users");
    if let Some(site) = website {
        c.extra.insert("website".into(), json!(site));
    }
    let data = json!({
        "id": uid, "name": c.name(), "link": c.link(), "website": website, "display_id": c.display_id,
        "created_at": ts(now),
        "android_web_redirect": text(&body, "android_web_redirect"),
        "ios_web_redirect": text(&body, "ios_web_redirect"),
        "domain": c.domain, "store_listings": c.listings_json(),
    });
    st.campaigns.insert(display_id, c);
    ok(StatusCode::CREATED, "Campaign created successfully!", data)
}

/// Display ids must survive a URL path and a `c=` parameter untouched.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn store_listings(ids: Option<&Value>) -> Result<Vec<usize>, ApiError> {
    let bad = |msg: &str| fail(StatusCode::BAD_REQUEST, msg);
    let ids: Vec<&str> = match ids {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().unwrap_or_default()).collect(),
        Some(_) => vec![""],
    };
    if ids.iter().any(|id| id.is_empty()) {
        return bad("store_listing_ids must be an array of non-empty strings!");
    }
    let found = match listing_indexes(&ids) {
        Ok(found) => found,
        Err(unknown) => {
            return bad(&format!(
                "Store listing(s) not found for this project: {}",
                unknown.join(", ")
            ))
        }
    };
    let ios = found.iter().filter(|&&i| LISTINGS[i].2 == "IOS").count();
    if ios > 1 || found.len() - ios > 1 {
        return bad("Cannot assign multiple store listings with the same platform to a campaign!");
    }
    Ok(found)
}

/// `PATCH` and `PUT /api/v1/campaigns/{display_id}`: only `name` and `active`, only those sent.
pub(crate) async fn edit_campaign(
    Extract(sim): Extract<Simulator>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply {
    let bad = |msg: &str| fail(StatusCode::BAD_REQUEST, msg);
    let body = parse_body(&bytes).unwrap_or_default();
    let (name, active) = (body.get("name"), body.get("active"));
    if name.is_none() && active.is_none() {
        return bad("At least one field (name or active) is required for update!");
    }
    if name.is_some_and(|n| n.as_str().is_none_or(|s| s.trim().is_empty())) {
        return bad("Campaign name cannot be empty!");
    }
    if active.is_some_and(|a| !a.is_boolean()) {
        return bad("Active field must be a boolean!");
    }
    let mut st = sim.lock();
    let now = st.now();
    let Some(c) = st.campaigns.get_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, "Campaign not found!");
    };
    if let Some(n) = name.and_then(Value::as_str) {
        c.rename(n.to_string());
    }
    if let Some(a) = active.and_then(Value::as_bool) {
        c.active = a;
    }
    c.update_at = now;
    ok(
        StatusCode::OK,
        "Campaign updated successfully!",
        c.to_json(),
    )
}

/// `DELETE /api/v1/campaigns/{display_id}`: 204 with an empty body; the rows go with it.
pub(crate) async fn delete_campaign(
    Extract(sim): Extract<Simulator>,
    Path(id): Path<String>,
) -> Reply {
    match sim.lock().campaigns.remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => fail(StatusCode::NOT_FOUND, "Campaign not found!"),
    }
}
