//! Schema drift and unreadable rows, applied when a record is rendered. Both are decided from a
//! seeded hash of the record's identity, not the request RNG, so a row renders the same way on
//! every request and in [`crate::Simulator::all_attributed_users`].

use crate::config::SimConfig;
use crate::data::Campaign;
use crate::hash::mix;
use crate::row::Row;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

const DRIFT: u64 = 0xD21F7;
const BAD: u64 = 0xBAD;

/// The record's own hash when its fraction falls under `rate`, so a higher rate only adds records.
fn pick(seed: u64, salt: u64, uid: u64, rate: f64) -> Option<u64> {
    let h = mix(mix(seed ^ salt) ^ uid);
    let fraction = (h >> 11) as f64 / (1u64 << 53) as f64;
    (fraction < rate).then(|| mix(h))
}

/// Rendering depends on the config alone (its seed, drift and bad-row rates), so the generator
/// can render rows as well as the handlers.
impl SimConfig {
    fn pick(&self, salt: u64, uid: u64, rate: f64) -> Option<u64> {
        pick(self.seed, salt, uid, rate)
    }

    pub(crate) fn drifts(&self, r: &Row) -> bool {
        self.pick(DRIFT, r.uid(), self.faults.drift_rate).is_some()
    }

    pub(crate) fn is_bad(&self, r: &Row) -> bool {
        self.pick(BAD, r.uid(), self.faults.bad_row_rate).is_some()
    }

    /// [`SimConfig::render_row`] as JSON text, rendered once per row and kept until the row,
    /// its campaign's name or the drift and bad-row rates change. Most rows are served as
    /// stored, and those are written without building their tree.
    pub(crate) fn served_row<'r>(&self, c: &Campaign, r: &'r Row) -> Cow<'r, str> {
        r.served(|| {
            if self.drifts(r) || self.is_bad(r) {
                self.render_row(c, r).to_string()
            } else {
                r.to_json_text(c)
            }
        })
    }

    /// A row as `GET /attributed-users` serves it.
    pub(crate) fn render_row(&self, c: &Campaign, r: &Row) -> Value {
        let mut v = r.to_json(c);
        let m = v.as_object_mut().unwrap();
        if let Some(h) = self.pick(DRIFT, r.uid(), self.faults.drift_rate) {
            drift_row(m, h);
        }
        if let Some(h) = self.pick(BAD, r.uid(), self.faults.bad_row_rate) {
            match h % 3 {
                0 => m.remove("attributed_at"),
                1 => m.insert("attributed_at".into(), Value::Null),
                _ => m.insert("attributed_at".into(), json!("not-a-date")),
            };
        }
        v
    }

    /// A campaign as `GET /campaigns` serves it; `display_id` never drifts.
    pub(crate) fn render_campaign(&self, c: &Campaign) -> Value {
        let mut v = c.to_json();
        if let Some(h) = self.pick(DRIFT, c.uid, self.faults.drift_rate) {
            match h % 3 {
                0 => v["attributed_users"] = json!(c.counter_value().to_string()),
                1 => v["meta_campaign_id"] = json!(""),
                _ => v["experiment_bucket"] = json!("B"),
            }
        }
        v
    }
}

/// One kind of drift, chosen by `h`, falling back to an unknown field when the chosen one would
/// change nothing. The key fields (`attributed_at`, `campaign_display_id`, `user_data.id`) are
/// never touched.
fn drift_row(m: &mut Map<String, Value>, h: u64) {
    let either = |pair: [&'static str; 2]| pair[(h >> 8) as usize % 2];
    let changed = match h % 5 {
        0 => m.remove(either(["platform_position", "link"])).is_some(),
        1 => {
            m.insert(
                either(["campaign_name", "store_click_at"]).into(),
                Value::Null,
            ) != Some(Value::Null)
        }
        2 => stringify_device_numbers(m),
        3 => m
            .values_mut()
            .find(|x| x.is_null())
            .map(|x| *x = json!(""))
            .is_some(),
        _ => false,
    };
    if !changed {
        m.insert("experiment_bucket".into(), json!("B"));
    }
}

/// Writes the numbers of the row's `device_data` as strings; false when it has none.
fn stringify_device_numbers(m: &mut Map<String, Value>) -> bool {
    let device = m
        .get_mut("user_data")
        .and_then(|u| u.get_mut("device_data"));
    let numbers = device
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|d| d.values_mut());
    numbers.filter(|x| x.is_number()).fold(false, |_, x| {
        *x = json!(x.to_string());
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_stable_nested_and_near_the_rate() {
        let picked = |rate| {
            (0..10_000)
                .filter(|&u| pick(7, DRIFT, u, rate).is_some())
                .collect::<Vec<_>>()
        };
        let (tenth, fifth) = (picked(0.1), picked(0.2));
        assert!((850..=1150).contains(&tenth.len()), "{}", tenth.len());
        assert!(tenth.iter().all(|u| fifth.contains(u)));
        assert_eq!(tenth, picked(0.1));
        assert!(picked(0.0).is_empty());
        assert_eq!(picked(1.0).len(), 10_000);
    }

    #[test]
    fn drift_changes_the_row_but_never_its_key() {
        let row = json!({
            "attributed_at": "2026-05-01T00:00:00.000Z", "campaign_display_id": "abc123",
            "campaign_name": "A", "link": null, "platform_position": "feed", "store_click_at": null,
            "user_data": { "id": "u_1", "device_data": { "api_level": 34, "brand": "google" } },
        });
        for h in 0..64 {
            let mut drifted = row.as_object().unwrap().clone();
            drift_row(&mut drifted, mix(h));
            assert_ne!(Value::Object(drifted.clone()), row);
            for key in ["attributed_at", "campaign_display_id"] {
                assert_eq!(drifted[key], row[key]);
            }
            assert_eq!(drifted["user_data"]["id"], "u_1");
        }
    }
}
