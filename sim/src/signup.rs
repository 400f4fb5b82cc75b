//! `POST /api/client/trigger`, the SDK's signup: a row of the install's campaign (or an
//! organic signup), and the signup webhook naming the same user, campaign and `attributed_at`
//! as the row the Data API then serves.

use crate::body::{object, text, Body};
use crate::client::client_body;
use crate::clock::ts;
use crate::install::Install;
use crate::reply::{ok, Reply};
use crate::row::{Row, AD_KEYS};
use crate::state::{Simulator, State};
use crate::webhook::event::{signup_event, Attribution};
use crate::webhook::send::push;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// `POST /api/client/trigger` (signup): on an install attributed to a live campaign, adds a row
/// for a new user id, or merges into the row of the same user id (a login); an organic install
/// makes no row. Either way the signup webhook goes out.
pub(crate) async fn trigger(Extract(sim): Extract<Simulator>, bytes: Bytes) -> Reply {
    let mut st = sim.lock();
    let body = client_body(&st, &bytes, StatusCode::BAD_REQUEST)?;
    let iid = text(&body, "install_instance_id").map(String::from);
    let install = st.install_of(iid.as_deref());
    let drawn = (st.take_uid(), st.now());
    let campaign = st.install_campaign(&install);
    let campaign = campaign.map(|c| {
        (
            c.display_id.clone(),
            c.name().to_string(),
            c.deeplink.clone(),
        )
    });
    let (deeplink, signed) = match campaign {
        Some((id, name, deeplink)) => {
            let (at, device) = st.sign_up(&id, &install, iid.clone(), drawn, &body);
            (
                deeplink,
                Signed {
                    campaign: Some((id, name)),
                    at,
                    device,
                },
            )
        }
        None => {
            let at = st.sign_up_organically(iid.as_deref(), drawn, &body);
            let sent = body.get("data").and_then(|d| d.get("device_data"));
            let device = install.device_data.clone().or_else(|| sent.cloned());
            let at = at.unwrap_or(drawn.1);
            (
                None,
                Signed {
                    campaign: None,
                    at,
                    device,
                },
            )
        }
    };
    if st.config.webhook.is_some() {
        let event = signed.event(&install, &body);
        push(&sim, &mut st, event, iid.as_deref());
    }
    let data = json!({ "deeplink": deeplink.unwrap_or_default(), "trigger": true });
    ok(StatusCode::OK, "Trigger processed successfully", data)
}

/// What a signup was attributed to, as its row (if any) has it.
struct Signed {
    /// (display id, name) of the campaign.
    campaign: Option<(String, String)>,
    /// The row's `attributed_at`, or when the organic signup happened.
    at: DateTime<Utc>,
    /// The row's device data, or the device data the signup's install or data sent.
    device: Option<Value>,
}

impl Signed {
    fn event(&self, install: &Install, body: &Body) -> Value {
        let campaign = self.campaign.as_ref();
        let campaign = campaign.map(|(id, name)| (id.as_str(), name.as_str()));
        let a = Attribution {
            campaign,
            at: self.at,
        };
        let (user, data) = (object(body.get("user_data")), object(body.get("data")));
        signup_event(install, &a, &user, &data, self.device.as_ref())
    }
}

impl State {
    /// A signup on an install of live campaign `id`, with a drawn row uid and the time; the
    /// `attributed_at` and device data of the row it made or logged into.
    fn sign_up(
        &mut self,
        id: &str,
        install: &Install,
        iid: Option<String>,
        (uid, now): (u64, DateTime<Utc>),
        body: &Body,
    ) -> (DateTime<Utc>, Option<Value>) {
        let user = object(body.get("user_data"));
        let user_id = user.get("id").cloned().unwrap_or_default();
        let same = |r: &&mut Row| {
            r.install() == iid.as_deref()
                && r.user_data().and_then(|u| u.get("id").cloned()) == Some(user_id.clone())
        };
        let device = |r: &Row| r.user_data().and_then(|u| u.get("device_data").cloned());
        let c = self
            .campaigns
            .get_mut(id)
            .expect("the install's campaign is live");
        let (ad, mut rows) = c.rows_mut();
        if let Some(row) = rows.find(same) {
            // A login changes the user's details, never the attribution.
            if user.contains_key("device_data") {
                self.lookup.invalidate();
            }
            if let Some(Value::Object(data)) = row.fields_mut(&ad).get_mut("user_data") {
                data.extend(user);
            }
            return (row.attributed_at(), device(row));
        }
        let row = signup_row(install, iid, uid, now, user, body);
        let signed = (now, device(&row));
        self.insert_row(id, row);
        signed
    }

    /// A signup on an install without a live campaign makes no row; on one that `init`
    /// registered without a campaign, the user is remembered as organic, and when the kept
    /// signup happened is returned.
    fn sign_up_organically(
        &mut self,
        iid: Option<&str>,
        (seq, now): (u64, DateTime<Utc>),
        body: &Body,
    ) -> Option<DateTime<Utc>> {
        let user = body.get("user_data").and_then(|u| u.get("id"));
        let user = user.and_then(Value::as_str).filter(|u| !u.is_empty());
        let (Some(iid), Some(user)) = (iid, user) else {
            return None;
        };
        let organic = |i: &&mut Install| i.installed_at.is_some() && i.campaign.is_none();
        let install = self.installs.get_mut(iid).filter(organic)?;
        let at = install.sign_up_organically(user, now, seq);
        self.lookup.add_install(iid, install, &self.campaigns);
        Some(at)
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
