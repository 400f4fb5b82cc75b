//! The campaign write APIs on `/api/v1`: create, edit and delete.

use crate::body::{parse_body, text, Body};
use crate::clock::ts;
use crate::data::Campaign;
use crate::generate::random_id;
use crate::project::{listing_indexes, LISTINGS, PROJECT_DOMAINS};
use crate::reply::{fail, ok, ApiError, Reply};
use crate::state::{Simulator, State};
use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn bad<T>(msg: &str) -> Result<T, ApiError> {
    fail(StatusCode::BAD_REQUEST, msg)
}

/// `POST /api/v1/create-campaign`: 201 with the create shape; defaults as §3.1 of the notes.
pub(crate) async fn create_campaign(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let body = parse_body(&bytes).unwrap_or_default();
    let Some(name) = text(&body, "name").filter(|n| !n.trim().is_empty()) else {
        return bad("Campaign name is required!");
    };
    let domain = campaign_domain(body.get("domain"))?;
    let listings = store_listings(body.get("store_listing_ids"))?;
    let mut st = sim.lock();
    let display_id = new_display_id(&mut st, body.get("custom_display_id"))?;
    let (uid, now) = (st.take_uid(), st.now());
    let mut c = Campaign::new(uid, display_id.clone(), name.to_string(), now);
    c.domain = Some(domain.to_string());
    c.store_listings = listings;
    c.deeplink = text(&body, "deeplink").map(String::from);
    if let Some(site) = text(&body, "link_for_desktop_users") {
        c.extra.insert("website".into(), json!(site));
    }
    let data = created_json(&c, now, &body);
    st.campaigns.insert(display_id, c);
    ok(StatusCode::CREATED, "Campaign created successfully!", data)
}

/// The campaign's domain: the project's primary one unless another of its domains is named.
fn campaign_domain(domain: Option<&Value>) -> Result<&'static str, ApiError> {
    match domain {
        None | Some(Value::Null) => Ok(PROJECT_DOMAINS[0]),
        Some(d) => match PROJECT_DOMAINS.iter().find(|p| d.as_str() == Some(**p)) {
            Some(p) => Ok(p),
            None => bad("Domain not found in project"),
        },
    }
}

/// The custom display id if it is valid and free, else a random free one.
fn new_display_id(st: &mut State, custom: Option<&Value>) -> Result<String, ApiError> {
    match custom {
        None | Some(Value::Null) => loop {
            let id = random_id(&mut st.id_rng, 10);
            if !st.campaigns.contains_key(&id) {
                break Ok(id);
            }
        },
        Some(Value::String(id)) if valid_id(id) && st.campaigns.contains_key(id) => {
            bad("Campaign with this display ID already exists!")
        }
        Some(Value::String(id)) if valid_id(id) => Ok(id.clone()),
        Some(_) => bad("Invalid custom_display_id!"),
    }
}

/// The `data` of a create-campaign answer.
fn created_json(c: &Campaign, now: DateTime<Utc>, body: &Body) -> Value {
    json!({
        "id": c.uid, "name": c.name(), "link": c.link(),
        "website": text(body, "link_for_desktop_users"), "display_id": c.display_id,
        "created_at": ts(now),
        "android_web_redirect": text(body, "android_web_redirect"),
        "ios_web_redirect": text(body, "ios_web_redirect"),
        "domain": c.domain, "store_listings": c.listings_json(),
    })
}

/// Display ids must survive a URL path and a `c=` parameter untouched.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The listings of `store_listing_ids`: known, and at most one per platform.
fn store_listings(ids: Option<&Value>) -> Result<Vec<usize>, ApiError> {
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

/// The `name` and `active` of an edit; at least one, each of the right kind.
fn edit_fields(body: &Body) -> Result<(Option<&str>, Option<bool>), ApiError> {
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
    Ok((
        name.and_then(Value::as_str),
        active.and_then(Value::as_bool),
    ))
}

/// `PATCH` and `PUT /api/v1/campaigns/{display_id}`: only `name` and `active`, only those sent.
pub(crate) async fn edit_campaign(
    Extract(sim): Extract<Simulator>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply {
    let body = parse_body(&bytes).unwrap_or_default();
    let (name, active) = edit_fields(&body)?;
    let mut st = sim.lock();
    let now = st.now();
    let Some(c) = st.campaigns.get_mut(&id) else {
        return fail(StatusCode::NOT_FOUND, "Campaign not found!");
    };
    if let Some(n) = name {
        c.rename(n.to_string());
    }
    if let Some(a) = active {
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
    match sim.lock().delete_campaign(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => fail(StatusCode::NOT_FOUND, "Campaign not found!"),
    }
}
