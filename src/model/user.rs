//! An attributed user as the warehouse holds it: the documented fields typed, `user_data` as
//! received, and `extra` for what the typed fields cannot hold exactly. The API's rows become
//! these in [`crate::api::rows`]; the database writes them by [`crate::db::columns`].

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Documented text fields of a row, in column order.
pub const TEXT_FIELDS: [&str; 10] = [
    "ad_channel",
    "campaign_name",
    "link",
    "meta_ad_id",
    "ad_creative_id",
    "ad_creative_name",
    "ad_set_id",
    "ad_set_name",
    "publisher_platform",
    "platform_position",
];

/// Documented timestamp fields other than `attributed_at`, in column order.
pub const TIME_FIELDS: [&str; 2] = ["installed_at", "store_click_at"];

#[derive(Clone, Debug, PartialEq, Default)]
pub struct UserRow {
    pub campaign_display_id: String,
    pub attributed_at: DateTime<Utc>,
    pub row_key: String,
    pub user_id: Option<String>,
    /// The [`TEXT_FIELDS`], in order.
    pub texts: [Option<String>; TEXT_FIELDS.len()],
    /// The [`TIME_FIELDS`], in order.
    pub times: [Option<DateTime<Utc>>; TIME_FIELDS.len()],
    /// `user_data` as the JSON text received; it goes to Postgres without being rebuilt.
    pub user_data: Option<String>,
    pub extra: Option<Value>,
}

/// An item we could not read or store, with the reason.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub reason: String,
    /// The item's JSON text as received (bytes that were not UTF-8 as `\udcXX` escapes).
    pub raw: String,
    /// Set for the row of a person `forget` erased: it is dropped, only its place kept.
    pub forgotten: Option<Forgotten>,
}

impl Rejected {
    pub fn new(reason: String, raw: String) -> Rejected {
        Rejected {
            reason,
            raw,
            forgotten: None,
        }
    }

    /// A forgotten person's row, dropped: only `place` is kept.
    pub fn forgotten(place: Forgotten) -> Rejected {
        Rejected {
            reason: String::new(),
            raw: String::new(),
            forgotten: Some(place),
        }
    }

    /// What tells this item apart from the others of its range: its text, or for a forgotten
    /// person's row its place (no JSON text starts with a NUL).
    pub fn key(&self) -> String {
        match &self.forgotten {
            None => self.raw.clone(),
            Some(f) => format!(
                "\0forgotten {} {}",
                f.attributed_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                f.key_digest
            ),
        }
    }

    pub fn is_forgotten_key(key: &str) -> bool {
        key.starts_with("\0forgotten")
    }
}

/// Where a dropped row of a forgotten person was: its instant (none when the row could not
/// be read) and a digest of its key.
#[derive(Clone, Debug)]
pub struct Forgotten {
    pub attributed_at: Option<DateTime<Utc>>,
    pub key_digest: String,
}
