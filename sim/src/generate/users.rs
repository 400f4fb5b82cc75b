//! Generated users: contact details, a device, and the optional ids some users have.

use super::draw::{object, random_id, uuid};
use super::rows::own_rng;
use crate::clock::ts;
use crate::row::Drawn;
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

const USER: u64 = 0x05E2;

/// The user of a generated row, drawn from a generator of their own.
pub(crate) fn draw_user(d: &Drawn) -> Map<String, Value> {
    new_user(&mut own_rng(d.salt, USER, d.user), d.user, d.user_at)
}

/// The id of a generated row's user, drawing no more than it takes.
pub(crate) fn drawn_user_id(d: &Drawn) -> Option<String> {
    has_id(d.salt, d.user).then(|| user_id(d.user))
}

/// True when the user whose first row has uid `user` has an id: the first draw of their
/// generator, as in [`new_user`].
pub(super) fn has_id(salt: u64, user: u64) -> bool {
    user_kind(&mut own_rng(salt, USER, user)) >= 4
}

fn user_kind(rng: &mut ChaCha8Rng) -> i32 {
    rng.random_range(0..100)
}

/// The id of user number `user` (the uid of their first row): `u_` and a number from it.
fn user_id(user: u64) -> String {
    format!("u_{}", 10_000 + user)
}

/// The uid of the first row of the user a generated id names, if it names one.
pub(crate) fn user_of_id(id: &str) -> Option<u64> {
    id.strip_prefix("u_")?
        .parse::<u64>()
        .ok()?
        .checked_sub(10_000)
}

/// Advertising ids end in 48 bits that name their user: the uid times this odd number, so
/// a look-up finds the user's rows without an index of every id.
const AD_ID_FACTOR: u64 = 0x9E37_79B9_7F4B;
const BITS_48: u64 = (1 << 48) - 1;

/// A random advertising id (a UUID) that names user `user`.
fn ad_id(rng: &mut ChaCha8Rng, user: u64) -> String {
    let mut bytes: [u8; 16] = rng.random();
    let tag = user.wrapping_mul(AD_ID_FACTOR) & BITS_48;
    bytes[10..].copy_from_slice(&tag.to_be_bytes()[2..]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The user an advertising id made by [`ad_id`] names, in any letter case; any other id gives
/// some number, which the caller checks against that user's rows.
pub(crate) fn user_of_ad_id(id: &str) -> Option<u64> {
    let bytes = uuid::Uuid::parse_str(id).ok()?.into_bytes();
    let mut tag = [0u8; 8];
    tag[2..].copy_from_slice(&bytes[10..]);
    Some(u64::from_be_bytes(tag).wrapping_mul(inverse(AD_ID_FACTOR)) & BITS_48)
}

/// The inverse of odd `a` modulo 2^64 (Newton's iteration doubles the correct bits each step).
fn inverse(a: u64) -> u64 {
    (0..6).fold(a, |x, _| {
        x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)))
    })
}

/// A new user, whose first row has uid `user`: ~3% with a null id but a device id, ~1% with
/// neither (told apart by name and email).
pub(crate) fn new_user(rng: &mut ChaCha8Rng, user: u64, at: DateTime<Utc>) -> Map<String, Value> {
    let kind = user_kind(rng);
    let n = 10_000 + user;
    let mut device = if rng.random_bool(0.6) {
        android_device(rng, user)
    } else {
        ios_device(rng, user)
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
    let email = format!("{first}.{last}{n}@example.net").to_lowercase();
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

fn android_device(rng: &mut ChaCha8Rng, user: u64) -> Map<String, Value> {
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
        m.insert("gaid".into(), json!(ad_id(rng, user)));
    }
    m
}

fn ios_device(rng: &mut ChaCha8Rng, user: u64) -> Map<String, Value> {
    const PLACES: [(&str, &str, &str, i32); 3] = [
        ("en_US", "US", "America/New_York", -240),
        ("en_IN", "IN", "Asia/Kolkata", 330),
        ("es_CL", "CL", "America/Santiago", -180),
    ];
    let (locale, country, timezone, offset) = *PLACES.choose(rng).unwrap();
    object(json!({
        "idfv": uuid(rng).to_uppercase(),
        "idfa": rng.random_bool(0.4).then(|| ad_id(rng, user).to_uppercase()),
        "locale": locale, "country": country, "timezone": timezone, "timezone_offset": offset,
        "device_display": { "scale": 3, "width": 1179, "height": 2556 },
        "install_instance_id": uuid(rng),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn advertising_ids_name_their_user() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for user in [0, 1, 2_001, 10_000_000, BITS_48] {
            let id = ad_id(&mut rng, user);
            assert_eq!(user_of_ad_id(&id), Some(user));
            assert_eq!(user_of_ad_id(&id.to_uppercase()), Some(user));
        }
        assert_eq!(user_of_ad_id("not-a-uuid"), None);
        assert_eq!(user_of_id(&user_id(2_001)), Some(2_001));
        assert_eq!(user_of_id("u_9"), None);
    }
}
