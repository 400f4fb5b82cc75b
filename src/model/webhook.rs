//! A webhook event as Linkrunner pushes it (`install` or `signup`), read from its body: the
//! documented fields typed, the body kept as received (after the personal-data door), and the
//! key that tells a redelivery from a new event.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::personal::{Identifier, Protection};

/// The event types Linkrunner sends.
pub const EVENT_TYPES: [&str; 2] = ["install", "signup"];

/// An event read from its body, ready to store (or to spool: it serializes as it stands, after
/// the door).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// The event's identity: a digest of its type, campaign, user (else device) and
    /// attribution instant; an event with none of user and device is known by its body.
    pub key: String,
    pub event_type: String,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    pub campaign_name: Option<String>,
    pub network_name: Option<String>,
    pub ad_channel: Option<String>,
    pub attributed_on: Option<DateTime<Utc>>,
    pub installed_at: Option<DateTime<Utc>>,
    pub store_click_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
    pub app_version: Option<String>,
    pub gaid: Option<String>,
    pub idfa: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// JSON text of the objects, as the door left them.
    pub additional_data: Option<String>,
    pub meta_campaign_details: Option<String>,
    pub google_campaign_details: Option<String>,
    /// The body as received, after the door.
    pub body: String,
    /// The suppression list's probes for the person the event is about (by id, email, phone),
    /// taken before the door.
    pub identities: Vec<(Identifier, String)>,
}

/// A body that is authentic but cannot be stored as an event, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Unreadable {
    pub reason: String,
    /// A digest of the body as received: a redelivery of it is counted, not kept again.
    pub digest: String,
}

/// Reads an event from its body, through the personal-data door.
pub fn read(body: &[u8], door: &Protection) -> Result<Event, Unreadable> {
    let unreadable = |reason: &str| Unreadable {
        reason: reason.to_owned(),
        digest: hex::encode(Sha256::digest(body)),
    };
    let raw = std::str::from_utf8(body).map_err(|_| unreadable("the body is not UTF-8"))?;
    let value: Value =
        serde_json::from_str(raw).map_err(|e| unreadable(&format!("not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(unreadable("the body is not a JSON object"));
    };
    if holds_nul(&Value::Object(fields.clone())) {
        return Err(unreadable(
            "the body holds a NUL character, which Postgres cannot store",
        ));
    }
    let event_type = match fields.get("event_type") {
        Some(Value::String(t)) if EVENT_TYPES.contains(&t.as_str()) => t.clone(),
        Some(Value::String(t)) => {
            return Err(unreadable(&format!(
                "unknown event_type {:?}",
                t.chars().take(40).collect::<String>()
            )))
        }
        _ => return Err(unreadable("no event_type")),
    };
    let text_of = |key: &str| text(fields.get(key));
    let time_of = |key: &str| instant(fields.get(key));
    let object_of = |key: &str| match fields.get(key) {
        Some(v @ Value::Object(_)) => Some(door.body(v.to_string())),
        _ => None,
    };
    let (name, phone, email) = (text_of("name"), text_of("phone"), text_of("email"));
    let mut identities = Vec::new();
    for (kind, value) in [
        (Identifier::UserId, text_of("user_id")),
        (Identifier::Email, email.clone()),
        (Identifier::Phone, phone.clone()),
    ] {
        if let Some(value) = value {
            identities.extend(kind.digests(&value).into_iter().map(|d| (kind, d)));
        }
    }
    let mut event = Event {
        key: String::new(),
        event_type,
        user_id: text_of("user_id"),
        campaign_id: text_of("campaign_id"),
        campaign_name: text_of("campaign_name"),
        network_name: text_of("network_name"),
        ad_channel: text_of("ad_channel"),
        attributed_on: time_of("attributed_on"),
        installed_at: time_of("installed_at"),
        store_click_at: time_of("store_click_at"),
        link: text_of("link"),
        app_version: text_of("app_version"),
        gaid: text_of("gaid"),
        idfa: text_of("idfa"),
        name: personal(door, "name", name),
        phone: personal(door, "phone", phone),
        email: personal(door, "email", email),
        additional_data: object_of("additional_data"),
        meta_campaign_details: object_of("meta_campaign_details"),
        google_campaign_details: object_of("google_campaign_details"),
        body: door.body(raw.to_owned()),
        identities,
    };
    event.key = key(&event, &fields, body);
    Ok(event)
}

/// The event's identity (the contract's ambiguity 4): its type, campaign, user id or else a
/// device id, and when it was attributed; the same user attributed again later is another
/// event. With neither user nor device id, the body is all there is to tell it by.
fn key(event: &Event, fields: &Map<String, Value>, body: &[u8]) -> String {
    let who = event
        .user_id
        .as_ref()
        .map(|u| format!("user:{u}"))
        .or_else(|| event.gaid.as_ref().map(|g| format!("gaid:{g}")))
        .or_else(|| event.idfa.as_ref().map(|i| format!("idfa:{i}")));
    let Some(who) = who else {
        return format!("body:{}", hex::encode(Sha256::digest(body)));
    };
    let when = match event.attributed_on {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => fields
            .get("attributed_on")
            .map_or("null".into(), Value::to_string),
    };
    let parts = [
        event.event_type.as_str(),
        event.campaign_id.as_deref().unwrap_or(""),
        &who,
        &when,
    ];
    let mut hasher = Sha256::new();
    for part in parts {
        // Lengths first, so no two lists of parts run together alike.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// A field as text: a string as it is, a number or boolean as written, and null, "" or an
/// absent field as nothing.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A field as an instant: RFC 3339 within the years Postgres and the job agree on; anything
/// else is nothing (the body keeps what came).
fn instant(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let Value::String(s) = value? else {
        return None;
    };
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (1..=9999).contains(&t.year()).then_some(t)
}

/// A personal value through the door: kept, hashed or dropped as the mode says.
fn personal(door: &Protection, key: &str, value: Option<String>) -> Option<String> {
    let value = value?;
    if !door.keys.iter().any(|k| k == key) {
        return Some(value);
    }
    match door.mode {
        crate::model::personal::Mode::Keep => Some(value),
        crate::model::personal::Mode::Hash => door.hash_value(key, &value),
        crate::model::personal::Mode::Drop => None,
    }
}

/// Whether any string or key in the value holds a NUL, which neither `text` nor `jsonb` takes.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::personal::Mode;

    const SIGNUP: &str = r#"{"event_type":"signup","user_id":"u-2","campaign_id":"OgWmhiSXhG",
        "ad_channel":"META","network_name":"ORGANIC","app_version":"1.0.0",
        "campaign_name":"TOF","attributed_on":"2026-03-25T15:52:00.007Z",
        "installed_at":"2025-12-30T12:34:29.742Z","store_click_at":null,
        "link":"https://dl.linkrunner.io/?c=OgWmhiSXhG","meta_campaign_details":null,
        "google_campaign_details":null,"gaid":"5faa","idfa":null,"name":"Test User",
        "phone":"9876543210","email":"test@example.com","additional_data":{"id":"u-2",
        "email":"test@example.com","referral_code":"ABC123"},"new_key":1}"#;

    fn keep() -> Protection {
        Protection::default()
    }

    #[test]
    fn a_signup_is_read_into_its_fields() {
        let e = read(SIGNUP.as_bytes(), &keep()).unwrap();
        assert_eq!(e.event_type, "signup");
        assert_eq!(e.user_id.as_deref(), Some("u-2"));
        assert_eq!(e.campaign_id.as_deref(), Some("OgWmhiSXhG"));
        assert_eq!(
            e.attributed_on.unwrap().to_rfc3339(),
            "2026-03-25T15:52:00.007+00:00"
        );
        assert_eq!(e.store_click_at, None);
        assert_eq!(e.idfa, None);
        assert_eq!(e.email.as_deref(), Some("test@example.com"));
        assert!(e.additional_data.unwrap().contains("ABC123"));
        assert_eq!(e.meta_campaign_details, None);
        assert_eq!(e.body, SIGNUP, "the body as received");
        assert_eq!(e.identities.len(), 3);
    }

    #[test]
    fn the_key_is_the_event_not_the_delivery() {
        let a = read(SIGNUP.as_bytes(), &keep()).unwrap();
        // The same event with its keys in another order and spacing is the same event.
        let mut v: Value = serde_json::from_str(SIGNUP).unwrap();
        let again = serde_json::to_string(&v).unwrap();
        assert_eq!(read(again.as_bytes(), &keep()).unwrap().key, a.key);
        // Attributed again later: another event.
        v["attributed_on"] = "2026-04-01T00:00:00Z".into();
        let later = read(v.to_string().as_bytes(), &keep()).unwrap();
        assert_ne!(later.key, a.key);
        // An install of the same device is another event.
        v["event_type"] = "install".into();
        assert_ne!(
            read(v.to_string().as_bytes(), &keep()).unwrap().key,
            later.key
        );
    }

    #[test]
    fn an_install_without_ids_is_known_by_its_body() {
        let a =
            r#"{"event_type":"install","campaign_id":null,"attributed_on":"2026-03-25T15:52:00Z"}"#;
        let b =
            r#"{"event_type":"install","campaign_id":null,"attributed_on":"2026-03-25T15:52:01Z"}"#;
        let (ka, kb) = (
            read(a.as_bytes(), &keep()).unwrap().key,
            read(b.as_bytes(), &keep()).unwrap().key,
        );
        assert!(ka.starts_with("body:"));
        assert_ne!(ka, kb);
    }

    #[test]
    fn odd_fields_are_nothing_and_the_body_keeps_them() {
        let body = r#"{"event_type":"install","user_id":"","campaign_id":42,
            "attributed_on":"yesterday","installed_at":"99999-01-01T00:00:00Z","gaid":"g"}"#;
        let e = read(body.as_bytes(), &keep()).unwrap();
        assert_eq!(e.user_id, None);
        assert_eq!(e.campaign_id.as_deref(), Some("42"));
        assert_eq!((e.attributed_on, e.installed_at), (None, None));
        assert_eq!(e.body, body);
    }

    #[test]
    fn what_cannot_be_an_event_says_why() {
        for (body, why) in [
            (&b"\xff\xfe"[..], "UTF-8"),
            (b"{not json", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"event_type":"purchase"}"#, "unknown event_type"),
            (br#"{"user_id":"u"}"#, "no event_type"),
            (br#"{"event_type":"signup","name":"a\u0000b"}"#, "NUL"),
        ] {
            let e = read(body, &keep()).unwrap_err();
            assert!(e.reason.contains(why), "{e:?}");
            assert_eq!(e.digest.len(), 64);
        }
    }

    #[test]
    fn personal_values_do_not_pass_the_door() {
        let secret = secrecy::SecretString::from("a-secret-of-sixteen-bytes");
        let keys = vec!["name".into(), "email".into(), "phone".into()];
        for mode in [Mode::Hash, Mode::Drop] {
            let door = Protection::new(mode, keys.clone(), Some(secret.clone())).unwrap();
            let e = read(SIGNUP.as_bytes(), &door).unwrap();
            let stored = format!(
                "{} {:?} {:?} {:?} {:?}",
                e.body, e.name, e.email, e.phone, e.additional_data
            );
            for value in ["Test User", "test@example.com", "9876543210"] {
                assert!(!stored.contains(value), "{mode:?}: {stored}");
            }
            assert_eq!(e.key, read(SIGNUP.as_bytes(), &keep()).unwrap().key);
            assert_eq!(e.identities.len(), 3, "probes are taken before the door");
        }
    }
}
