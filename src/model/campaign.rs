//! A campaign of the campaign list and its store listings, as the warehouse holds them. The
//! API's items become these in [`crate::api::rows`]; the database writes them in
//! [`crate::db::campaigns`].

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::model::user::Rejected;

/// The `display_id` a listing item that cannot be stored is kept under in `rejected_rows` when
/// its own `display_id` cannot be stored either (missing, not a string, holding text Postgres
/// cannot store, or too long to be a key).
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
    /// Why the item cannot be stored, when it cannot. Such an item is kept in `rejected_rows`
    /// and neither stored nor read; its `display_id` is [`UNSTORABLE_ID`] unless its own can be
    /// stored, and no other field is read.
    pub unstorable: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreListing {
    pub id: String,
    pub name: Option<String>,
    pub platform: Option<String>,
}

impl CampaignRow {
    /// An item that cannot be stored: kept as received under `display_id`, with the reason.
    pub fn unstorable(display_id: String, raw: &RawValue, reason: String) -> CampaignRow {
        CampaignRow {
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
            raw: raw.to_owned(),
            unstorable: Some(reason),
        }
    }

    /// Whether the campaign can be stored and read.
    pub fn is_storable(&self) -> bool {
        self.unstorable.is_none()
    }

    /// The item as `rejected_rows` keeps it, when it cannot be stored.
    pub fn rejected(&self) -> Option<Rejected> {
        Some(Rejected::new(
            self.unstorable.clone()?,
            self.raw.get().to_owned(),
        ))
    }
}
