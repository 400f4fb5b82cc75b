//! Campaigns and store listings from the campaign list.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::PgConnection;

use crate::api::rows::storable::{self, MAX_KEY_BYTES};
use crate::model::user::Rejected;

/// The `display_id` a listing item that cannot be stored is kept under in `rejected_rows` when
/// its own `display_id` cannot be stored either (missing, not a string, holding text Postgres
/// cannot store, or over [`MAX_KEY_BYTES`]).
pub const UNSTORABLE_ID: &str = "(display_id not storable)";

/// A listing item, typed leniently; `raw` is the item as received.
#[derive(Clone, Debug)]
pub struct CampaignRow {
    pub display_id: String,
    pub name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub update_at: Option<DateTime<Utc>>,
    pub google: Option<bool>,
    pub meta: Option<bool>,
    pub meta_campaign_id: Option<String>,
    pub meta_web_to_app: Option<bool>,
    pub active: Option<bool>,
    pub default_link: Option<bool>,
    pub attributed_users: Option<i64>,
    pub link: Option<String>,
    pub shareable_link: Option<String>,
    pub domain: Option<String>,
    pub store_listings: Vec<StoreListing>,
    /// The item's text as received.
    pub raw: Box<RawValue>,
    /// Why the item cannot be stored, when it cannot (see [`storable`]). Such an item is kept in
    /// `rejected_rows` and neither stored nor read; its `display_id` is [`UNSTORABLE_ID`] unless
    /// its own can be stored, and no other field is read.
    pub unstorable: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreListing {
    pub id: String,
    pub name: Option<String>,
    pub platform: Option<String>,
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

impl CampaignRow {
    /// Types a listing item; one that cannot be stored comes back with the reason in
    /// `unstorable`. `recoded` says the item's page was not UTF-8 (`Page::recoded`).
    pub fn from_wire(item: &RawValue, recoded: bool) -> CampaignRow {
        CampaignRow::read(item, recoded).unwrap_or_else(|(display_id, reason)| CampaignRow {
            display_id,
            name: None,
            created_at: None,
            update_at: None,
            google: None,
            meta: None,
            meta_campaign_id: None,
            meta_web_to_app: None,
            active: None,
            default_link: None,
            attributed_users: None,
            link: None,
            shareable_link: None,
            domain: None,
            store_listings: Vec::new(),
            raw: item.to_owned(),
            unstorable: Some(reason),
        })
    }

    /// Whether the campaign can be stored and read.
    pub fn is_storable(&self) -> bool {
        self.unstorable.is_none()
    }

    /// The item as `rejected_rows` keeps it, when it cannot be stored.
    pub fn rejected(&self) -> Option<Rejected> {
        Some(Rejected {
            reason: self.unstorable.clone()?,
            raw: self.raw.get().to_owned(),
        })
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
        let store_listings: Vec<StoreListing> = raw
            .get("store_listings")
            .and_then(Value::as_array)
            .map(|items| {
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
            })
            .unwrap_or_default();
        if let Some(long) = store_listings.iter().find(|l| l.id.len() > MAX_KEY_BYTES) {
            let reason = storable::long_key_reason("a store_listing_id", long.id.len());
            return Err(aside(reason));
        }
        let attributed_users = match raw.get("attributed_users") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Ok(CampaignRow {
            name: text(&raw, "name"),
            created_at: time(&raw, "created_at"),
            update_at: time(&raw, "update_at"),
            google: flag(&raw, "google"),
            meta: flag(&raw, "meta"),
            meta_campaign_id: text(&raw, "meta_campaign_id"),
            meta_web_to_app: flag(&raw, "meta_web_to_app"),
            active: flag(&raw, "active"),
            default_link: flag(&raw, "default_link"),
            attributed_users,
            link: text(&raw, "link"),
            shareable_link: text(&raw, "shareable_link"),
            domain: text(&raw, "domain"),
            store_listings,
            display_id,
            raw: item.to_owned(),
            unstorable: None,
        })
    }
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

/// Upserts the listed campaigns and their store listings; returns how many were new or changed.
pub async fn upsert(conn: &mut PgConnection, campaigns: &[&CampaignRow]) -> sqlx::Result<u64> {
    let col =
        |f: fn(&CampaignRow) -> Option<String>| campaigns.iter().map(|c| f(c)).collect::<Vec<_>>();
    let ids: Vec<String> = campaigns.iter().map(|c| c.display_id.clone()).collect();
    let changed = sqlx::query(
        "INSERT INTO linkrunner.campaigns (display_id, name, created_at, update_at, google, meta,
             meta_campaign_id, meta_web_to_app, active, default_link, attributed_users, link,
             shareable_link, domain, raw)
         SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15::jsonb FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],
             $5::bool[], $6::bool[], $7::text[], $8::bool[], $9::bool[], $10::bool[], $11::int8[],
             $12::text[], $13::text[], $14::text[], $15::text[])
             AS t(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)
         ON CONFLICT (display_id) DO UPDATE SET
             name = EXCLUDED.name, created_at = EXCLUDED.created_at, update_at = EXCLUDED.update_at,
             google = EXCLUDED.google, meta = EXCLUDED.meta,
             meta_campaign_id = EXCLUDED.meta_campaign_id, meta_web_to_app = EXCLUDED.meta_web_to_app,
             active = EXCLUDED.active, default_link = EXCLUDED.default_link,
             attributed_users = EXCLUDED.attributed_users, link = EXCLUDED.link,
             shareable_link = EXCLUDED.shareable_link, domain = EXCLUDED.domain, raw = EXCLUDED.raw,
             changed_at = now(), deleted_at = NULL
         WHERE campaigns.raw IS DISTINCT FROM EXCLUDED.raw OR campaigns.deleted_at IS NOT NULL",
    )
    .bind(&ids)
    .bind(col(|c| c.name.clone()))
    .bind(campaigns.iter().map(|c| c.created_at).collect::<Vec<_>>())
    .bind(campaigns.iter().map(|c| c.update_at).collect::<Vec<_>>())
    .bind(campaigns.iter().map(|c| c.google).collect::<Vec<_>>())
    .bind(campaigns.iter().map(|c| c.meta).collect::<Vec<_>>())
    .bind(col(|c| c.meta_campaign_id.clone()))
    .bind(campaigns.iter().map(|c| c.meta_web_to_app).collect::<Vec<_>>())
    .bind(campaigns.iter().map(|c| c.active).collect::<Vec<_>>())
    .bind(campaigns.iter().map(|c| c.default_link).collect::<Vec<_>>())
    .bind(campaigns.iter().map(|c| c.attributed_users).collect::<Vec<_>>())
    .bind(col(|c| c.link.clone()))
    .bind(col(|c| c.shareable_link.clone()))
    .bind(col(|c| c.domain.clone()))
    .bind(campaigns.iter().map(|c| c.raw.get()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?
    .rows_affected();

    // Rows inserted above already carry this transaction's now().
    sqlx::query(
        "UPDATE linkrunner.campaigns SET last_seen_at = now()
         WHERE display_id = ANY($1) AND last_seen_at <> now()",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    upsert_listings(conn, campaigns, &ids).await?;
    Ok(changed)
}

/// Upserts the campaigns' store listings and which campaign uses which.
async fn upsert_listings(
    conn: &mut PgConnection,
    campaigns: &[&CampaignRow],
    ids: &[String],
) -> sqlx::Result<()> {
    let listings: Vec<&StoreListing> = campaigns.iter().flat_map(|c| &c.store_listings).collect();
    sqlx::query(
        "INSERT INTO linkrunner.store_listings (store_listing_id, name, platform)
         SELECT DISTINCT ON (id) id, name, platform
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(id, name, platform)
         ORDER BY id
         ON CONFLICT (store_listing_id) DO UPDATE SET
             name = EXCLUDED.name, platform = EXCLUDED.platform, last_seen_at = now()",
    )
    .bind(listings.iter().map(|l| l.id.clone()).collect::<Vec<_>>())
    .bind(listings.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
    .bind(
        listings
            .iter()
            .map(|l| l.platform.clone())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;

    let (pair_campaign, pair_listing): (Vec<String>, Vec<String>) = campaigns
        .iter()
        .flat_map(|c| {
            c.store_listings
                .iter()
                .map(|l| (c.display_id.clone(), l.id.clone()))
        })
        .unzip();
    sqlx::query(
        "DELETE FROM linkrunner.campaign_store_listings c
         WHERE c.display_id = ANY($1)
           AND (c.display_id, c.store_listing_id) NOT IN (SELECT * FROM UNNEST($2::text[], $3::text[]))",
    )
    .bind(ids)
    .bind(&pair_campaign)
    .bind(&pair_listing)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO linkrunner.campaign_store_listings (display_id, store_listing_id)
         SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&pair_campaign)
    .bind(&pair_listing)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks campaigns missing from a complete listing as deleted; their rows stay.
pub async fn mark_missing_deleted(conn: &mut PgConnection, listed: &[String]) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE linkrunner.campaigns SET deleted_at = now()
         WHERE deleted_at IS NULL AND display_id <> ALL($1)",
    )
    .bind(listed)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Marks one campaign deleted (it answered 404).
pub async fn mark_deleted(conn: &mut PgConnection, display_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE linkrunner.campaigns SET deleted_at = now()
         WHERE display_id = $1 AND deleted_at IS NULL",
    )
    .bind(display_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{any_json, object_with};
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "display_id",
        "name",
        "created_at",
        "update_at",
        "google",
        "meta",
        "meta_campaign_id",
        "meta_web_to_app",
        "active",
        "default_link",
        "attributed_users",
        "link",
        "shareable_link",
        "domain",
        "store_listings",
    ];

    #[test]
    fn drifted_counters_and_empty_ids_are_read() {
        let c = item(serde_json::json!({
            "display_id": "x1", "attributed_users": "12", "meta_campaign_id": "", "active": "false"
        }));
        assert_eq!(
            (c.attributed_users, c.meta_campaign_id, c.active),
            (Some(12), None, Some(false))
        );
        let empty = item(serde_json::json!({"display_id": ""}));
        assert_eq!(empty.display_id, UNSTORABLE_ID);
        assert!(empty.unstorable.unwrap().contains("no display_id"));
    }

    #[test]
    fn a_campaign_postgres_cannot_store_is_set_aside_as_received() {
        let cases = [
            (
                r#"{"display_id":"x2","name":"Spring\u0000sale"}"#,
                "x2",
                "NUL",
            ),
            (
                r#"{"display_id":"x3","name":"Zo\ud83d"}"#,
                "x3",
                "surrogate",
            ),
            (
                r#"{"display_id":"x\u0000","name":"A"}"#,
                UNSTORABLE_ID,
                "NUL",
            ),
            (r#"{"display_id":5}"#, UNSTORABLE_ID, "no display_id"),
            (r#"{"display_id":"x4","n":1e400}"#, "x4", "cannot be read"),
            (r#"[1]"#, UNSTORABLE_ID, "not a JSON object"),
        ];
        for (text, id, reason) in cases {
            let c = CampaignRow::from_wire(&RawValue::from_string(text.into()).unwrap(), false);
            assert_eq!(c.display_id, id, "{text}");
            let rejected = c.rejected().unwrap();
            assert!(
                rejected.reason.contains(reason),
                "{text}: {}",
                rejected.reason
            );
            assert_eq!(rejected.raw, text);
        }
        let long = serde_json::json!({"display_id": "x".repeat(MAX_KEY_BYTES + 1)});
        assert_eq!(item(long).display_id, UNSTORABLE_ID);
        let listing = serde_json::json!({"display_id": "x5", "store_listings": [
            {"store_listing_id": "s".repeat(MAX_KEY_BYTES + 1)}
        ]});
        assert_eq!(item(listing).display_id, "x5");
        // Of two display_ids, the last.
        let twice = r#"{"display_id":"a","display_id":"b"}"#;
        let c = CampaignRow::from_wire(&RawValue::from_string(twice.into()).unwrap(), false);
        assert_eq!((c.display_id.as_str(), c.is_storable()), ("b", true));
    }

    fn item(value: Value) -> CampaignRow {
        CampaignRow::from_wire(&serde_json::value::to_raw_value(&value).unwrap(), false)
    }

    proptest! {
        #[test]
        fn any_item_is_kept_as_received(value in any_json(), item in object_with(KEYS)) {
            let _ = super::tests::item(value);
            let c = super::tests::item(item.clone());
            // As received, whether stored or set aside.
            prop_assert_eq!(serde_json::from_str::<Value>(c.raw.get()).unwrap(), item);
            prop_assert_eq!(c.is_storable(), c.rejected().is_none());
        }
    }
}
