//! The JSON body of an `install` or `signup` webhook, as Linkrunner's webhook page documents
//! it, built from what the simulator knows of the install and its attribution.

use crate::body::Body;
use crate::clock::ts;
use crate::install::Install;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// What an event is attributed to, and when.
pub(crate) struct Attribution<'a> {
    /// (display id, name) of the campaign; `None` for an organic install or signup.
    pub(crate) campaign: Option<(&'a str, &'a str)>,
    /// `attributed_on`: the first `init` for an install, the row's `attributed_at` for a signup.
    pub(crate) at: DateTime<Utc>,
}

/// An install: no user, no personal data.
pub(crate) fn install_event(install: &Install, a: &Attribution) -> Value {
    let device = install.device_data.as_ref();
    let mut event = common("install", install, a, device);
    for key in ["user_id", "name", "phone", "email", "additional_data"] {
        event.insert(key.into(), Value::Null);
    }
    Value::Object(event)
}

/// A signup: the user as the SDK sent it, and `additional_data` as the user data merged with
/// the SDK's `data` bag (as the page's example has it), with the device data the row keeps.
pub(crate) fn signup_event(
    install: &Install,
    a: &Attribution,
    user: &Body,
    data: &Body,
    device: Option<&Value>,
) -> Value {
    let mut event = common("signup", install, a, device);
    let field = |k: &str| user.get(k).cloned().unwrap_or(Value::Null);
    for key in ["name", "phone", "email"] {
        event.insert(key.into(), field(key));
    }
    event.insert("user_id".into(), field("id"));
    let mut additional = user.clone();
    additional.extend(data.clone());
    if let Some(d) = device {
        additional.entry("device_data").or_insert_with(|| d.clone());
    }
    event.insert("additional_data".into(), Value::Object(additional));
    Value::Object(event)
}

/// The fields both events have. A plain link campaign has no ad network behind it, so the
/// channel and the ad details are null; its network is named as `attribution-data` names it.
fn common(kind: &str, install: &Install, a: &Attribution, device: Option<&Value>) -> Body {
    let (campaign_id, campaign_name) = a.campaign.unzip();
    let network = if a.campaign.is_some() {
        "LINKRUNNER"
    } else {
        "ORGANIC"
    };
    let event = json!({
        "event_type": kind,
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
        "network_name": network,
        "ad_channel": null,
        "attributed_on": ts(a.at),
        "installed_at": install.installed_at.map(ts),
        "store_click_at": install.store_click_at.map(ts),
        "link": install.link,
        "app_version": install.app_version,
        "gaid": ad_id(device, "gaid"),
        "idfa": ad_id(device, "idfa"),
        "meta_campaign_details": null,
        "google_campaign_details": null,
    });
    match event {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

/// A device id the user consented to: not empty and not the all-zero id of a refusal.
fn ad_id<'a>(device: Option<&'a Value>, key: &str) -> Option<&'a str> {
    let id = device?.get(key)?.as_str()?;
    id.bytes().any(|b| b != b'0' && b != b'-').then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn both_events_have_every_documented_field_and_no_other() {
        let mut documented: Vec<&str> = DOCUMENTED.to_vec();
        documented.sort();
        let at = Utc.timestamp_millis_opt(1_780_000_000_123).unwrap();
        let install = Install {
            installed_at: Some(at),
            device_data: Some(
                json!({ "gaid": "g-1", "idfa": "00000000-0000-0000-0000-000000000000" }),
            ),
            app_version: Some("2.1.0".into()),
            ..Install::default()
        };
        let a = Attribution {
            campaign: Some(("c1", "Spring")),
            at,
        };
        let installed = install_event(&install, &a);
        assert_eq!(keys(&installed), documented);
        assert_eq!(installed["gaid"], "g-1");
        assert_eq!(
            installed["idfa"],
            Value::Null,
            "the all-zero IDFA is no consent"
        );
        assert_eq!(installed["attributed_on"], "2026-05-28T20:26:40.123Z");
        let user = json!({ "id": "u1", "name": "N", "email": "e@x", "extra": 1 });
        let data = json!({ "referral_code": "R" });
        let (user, data) = (user.as_object().unwrap(), data.as_object().unwrap());
        let organic = Attribution { campaign: None, at };
        let signup = signup_event(&install, &organic, user, data, install.device_data.as_ref());
        assert_eq!(keys(&signup), documented);
        assert_eq!(
            (&signup["user_id"], &signup["phone"]),
            (&json!("u1"), &Value::Null)
        );
        assert_eq!(
            (&signup["campaign_id"], &signup["network_name"]),
            (&Value::Null, &json!("ORGANIC"))
        );
        let extra = &signup["additional_data"];
        assert_eq!(
            (&extra["extra"], &extra["referral_code"]),
            (&json!(1), &json!("R"))
        );
        assert_eq!(extra["device_data"]["gaid"], "g-1");
    }
}
