//! A campaign of the list as received, typed leniently into a [`CampaignRow`]; an item whose
//! text Postgres cannot store is kept aside whole ([`storable`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::model::campaign::{CampaignRow, StoreListing, UNSTORABLE_ID};
use crate::model::storable::{self, MAX_KEY_BYTES};

impl CampaignRow {
    /// Types a listing item; one that cannot be stored comes back with the reason in
    /// `unstorable`. `recoded` says the item's page was not UTF-8 (`Page::recoded`).
    pub fn from_wire(item: &RawValue, recoded: bool) -> CampaignRow {
        read(item, recoded).unwrap_or_else(|(display_id, reason)| {
            CampaignRow::unstorable(display_id, item, reason)
        })
    }
}

/// The typed item, or the `display_id` to keep it under and why it cannot be stored.
fn read(item: &RawValue, recoded: bool) -> Result<CampaignRow, (String, String)> {
    let display_id = display_id(item, recoded).map_err(|e| (UNSTORABLE_ID.to_owned(), e))?;
    let aside = |reason: String| (display_id.clone(), reason);
    let problems = storable::problems(item.get(), recoded);
    if problems.any() {
        return Err(aside(format!("the campaign {problems}")));
    }
    let raw: Value = serde_json::from_str(item.get())
        .map_err(|e| aside(format!("the campaign cannot be read ({e})")))?;
    let store_listings = store_listings(&raw);
    if let Some(long) = store_listings.iter().find(|l| l.id.len() > MAX_KEY_BYTES) {
        let reason = storable::long_key_reason("a store_listing_id", long.id.len());
        return Err(aside(reason));
    }
    Ok(typed(&raw, display_id, store_listings, item))
}

/// The item's `display_id` (of two, the last), or why it cannot be stored.
fn display_id(item: &RawValue, recoded: bool) -> Result<String, String> {
    let members: BTreeMap<String, &RawValue> = serde_json::from_str(item.get())
        .map_err(|_| "the campaign is not a JSON object with readable keys".to_owned())?;
    let member = members
        .get("display_id")
        .map(|m| m.get())
        .filter(|m| m.starts_with('"') && *m != "\"\"")
        .ok_or_else(|| "the campaign has no display_id (a non-empty string)".to_owned())?;
    let problems = storable::problems(member, recoded);
    if problems.any() {
        return Err(format!("its display_id {problems}"));
    }
    let id: String =
        serde_json::from_str(member).map_err(|e| format!("its display_id cannot be read ({e})"))?;
    if id.len() > MAX_KEY_BYTES {
        return Err(storable::long_key_reason("its display_id", id.len()));
    }
    Ok(id)
}

/// The store listings that carry an id; the others are skipped.
fn store_listings(raw: &Value) -> Vec<StoreListing> {
    let Some(items) = raw.get("store_listings").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|l| {
            Some(StoreListing {
                id: text(l, "store_listing_id")?,
                name: text(l, "name"),
                platform: text(l, "platform"),
            })
        })
        .collect()
}

/// The storable item's fields.
fn typed(
    raw: &Value,
    display_id: String,
    store_listings: Vec<StoreListing>,
    item: &RawValue,
) -> CampaignRow {
    CampaignRow {
        name: text(raw, "name"),
        created_at: time(raw, "created_at"),
        update_at: time(raw, "update_at"),
        google: flag(raw, "google"),
        meta: flag(raw, "meta"),
        meta_campaign_id: text(raw, "meta_campaign_id"),
        meta_web_to_app: flag(raw, "meta_web_to_app"),
        active: flag(raw, "active"),
        default_link: flag(raw, "default_link"),
        attributed_users: counter(raw, "attributed_users"),
        link: text(raw, "link"),
        shareable_link: text(raw, "shareable_link"),
        domain: text(raw, "domain"),
        store_listings,
        display_id,
        raw: item.to_owned(),
        unstorable: None,
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    let s = v.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A count that may arrive as a number or as a numeric string.
fn counter(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
