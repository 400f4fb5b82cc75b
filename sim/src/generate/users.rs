//! Generated users: contact details, a device, and the optional ids some users have.

use super::draw::{object, random_id, uuid};
use crate::clock::ts;
use chrono::{DateTime, TimeDelta, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

const FIRST: [&str; 8] = [
    "Priya", "Ines", "Mateo", "Aiko", "Liam", "Zara", "Noah", "Chloé",
];
const LAST: [&str; 8] = [
    "Raman", "Falk", "Rojas", "Sato", "Walsh", "Khan", "Novak", "Dubois",
];

/// A new user: ~3% with a null id but a device id, ~1% with neither (told apart by name and email).
/// `next` counts the users made so far and numbers their ids.
pub(super) fn new_user(
    rng: &mut ChaCha8Rng,
    next: &mut u64,
    at: DateTime<Utc>,
) -> Map<String, Value> {
    *next += rng.random_range(1..=9);
    let n = 10_000 + *next;
    let kind = rng.random_range(0..100);
    let mut device = if rng.random_bool(0.6) {
        android_device(rng)
    } else {
        ios_device(rng)
    };
    let mut user = contact(rng, n, kind);
    strip_device_ids(&mut device, kind);
    user.insert("device_data".into(), Value::Object(device));
    add_optional_fields(rng, &mut user, at);
    user
}

/// `id`, `name`, `email` and `phone` of user number `n`; of `kind` 0 to 3 there is no id, and
/// kind 0 is named after its number.
fn contact(rng: &mut ChaCha8Rng, n: u64, kind: i32) -> Map<String, Value> {
    let (first, last) = (*FIRST.choose(rng).unwrap(), *LAST.choose(rng).unwrap());
    let email = format!("{}.{}{}@example.net", first, last, n % 100).to_lowercase();
    let phone = format!("+1555{:07}", rng.random_range(0..10_000_000));
    let mut user = object(json!({
        "id": (kind >= 4).then(|| format!("u_{n}")),
        "name": rng.random_bool(0.9).then(|| format!("{first} {last}")),
        "email": rng.random_bool(0.85).then_some(email),
        "phone": rng.random_bool(0.7).then_some(phone),
    }));
    if kind == 0 {
        user.insert("name".into(), json!(format!("Anon {n}")));
        user.insert("email".into(), json!(format!("anon{n}@example.net")));
    }
    user
}

/// Kind 0 loses every device id, kind 1 the install id, kind 2 the device ids.
fn strip_device_ids(device: &mut Map<String, Value>, kind: i32) {
    let strip: &[&str] = match kind {
        0 => &[
            "install_instance_id",
            "device_id",
            "android_id",
            "idfv",
            "idfa",
            "gaid",
        ],
        1 => &["install_instance_id"],
        2 => &["device_id", "android_id", "idfv"],
        _ => &[],
    };
    for k in strip {
        device.remove(*k);
    }
}

/// A referral code, a Mixpanel id, and when the user was created, each for some users.
fn add_optional_fields(rng: &mut ChaCha8Rng, user: &mut Map<String, Value>, at: DateTime<Utc>) {
    if rng.random_bool(0.15) {
        user.insert(
            "referral_code".into(),
            json!(format!("REF{}", random_id(rng, 5).to_uppercase())),
        );
    }
    if rng.random_bool(0.15) {
        user.insert("mixpanel_distinct_id".into(), json!(uuid(rng)));
    }
    if rng.random_bool(0.25) {
        user.insert(
            "user_created_at".into(),
            json!(ts(at - TimeDelta::days(rng.random_range(0..400)))),
        );
        user.insert("is_first_time_user".into(), json!(rng.random_bool(0.7)));
    }
}

fn android_device(rng: &mut ChaCha8Rng) -> Map<String, Value> {
    const MODELS: [(&str, &str, &str); 3] = [
        ("google", "Google", "Pixel 8"),
        ("samsung", "samsung", "Galaxy S23"),
        ("xiaomi", "Xiaomi", "Redmi Note 12"),
    ];
    let (brand, manufacturer, device_name) = *MODELS.choose(rng).unwrap();
    let device_id = format!("{:016x}", rng.random::<u64>());
    let mut m = object(json!({
        "brand": brand, "base_os": "", "version": "4.12.0", "build_id": "AP2A.240905.003",
        "api_level": rng.random_range(30..=35), "bundle_id": "org.example.shop",
        "device_id": device_id, "android_id": device_id, "device_name": device_name,
        "device_type": "user", "build_number": "412",
        "connectivity": *["wifi", "cellular"].choose(rng).unwrap(),
        "manufacturer": manufacturer, "application_name": "Example Shop",
        "install_instance_id": uuid(rng),
    }));
    if rng.random_bool(0.7) {
        m.insert("gaid".into(), json!(uuid(rng)));
    }
    m
}

fn ios_device(rng: &mut ChaCha8Rng) -> Map<String, Value> {
    const PLACES: [(&str, &str, &str, i32); 3] = [
        ("en_US", "US", "America/New_York", -240),
        ("en_IN", "IN", "Asia/Kolkata", 330),
        ("es_CL", "CL", "America/Santiago", -180),
    ];
    let (locale, country, timezone, offset) = *PLACES.choose(rng).unwrap();
    object(json!({
        "idfv": uuid(rng).to_uppercase(),
        "idfa": rng.random_bool(0.4).then(|| uuid(rng).to_uppercase()),
        "locale": locale, "country": country, "timezone": timezone, "timezone_offset": offset,
        "device_display": { "scale": 3, "width": 1179, "height": 2556 },
        "install_instance_id": uuid(rng),
    }))
}
