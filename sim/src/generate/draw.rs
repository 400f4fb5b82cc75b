//! Single draws the generators share.

use chrono::{DateTime, TimeDelta, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random alphanumerics, as create-campaign generates display ids.
pub(crate) fn random_id(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| *ALNUM.choose(rng).unwrap() as char)
        .collect()
}

/// A uniformly random millisecond in `[lo, hi]` (`lo` when the range is empty).
pub(super) fn between(rng: &mut ChaCha8Rng, lo: DateTime<Utc>, hi: DateTime<Utc>) -> DateTime<Utc> {
    let span = (hi - lo).num_milliseconds().max(0);
    lo + TimeDelta::milliseconds(rng.random_range(0..=span))
}

pub(super) fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// The map of a `json!` object literal.
pub(crate) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
