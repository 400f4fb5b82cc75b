//! The Reporting API's campaign filters: `active`, `network`, `platform`, `meta_account_id`
//! and `search`. Unlike `from` and `to`, they do narrow the campaign list.

use crate::data::Campaign;
use crate::project::LISTINGS;
use crate::reply::ApiError;
use serde_json::Value;
use std::collections::HashMap;

/// The filters sent; an absent one keeps every campaign.
pub(super) struct Filter {
    active: Option<bool>,
    /// Lower-cased. A network no simulated campaign runs on (`tiktok`, `snapchat`, ...) keeps
    /// none rather than being an error: the real list of networks is open.
    network: Option<String>,
    /// `ios` or `android`, lower-cased: a store listing of that platform.
    platform: Option<String>,
    meta_account_id: Option<String>,
    /// Lower-cased; found in the name or the display id.
    search: Option<String>,
}

impl Filter {
    pub(super) fn parse(q: &HashMap<String, String>) -> Result<Filter, ApiError> {
        let active = match q.get("active").map(String::as_str) {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(a) => return Err(ApiError::unprocessable(format!("Invalid active '{a}'."))),
        };
        let lower = |key: &str| {
            q.get(key)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_lowercase())
        };
        Ok(Filter {
            active,
            network: lower("network"),
            platform: lower("platform"),
            meta_account_id: q.get("meta_account_id").filter(|v| !v.is_empty()).cloned(),
            search: lower("search"),
        })
    }

    pub(super) fn keeps(&self, c: &Campaign) -> bool {
        self.active.is_none_or(|a| c.active == a)
            && self.network.as_deref().is_none_or(|n| on_network(c, n))
            && self.platform.as_deref().is_none_or(|p| on_platform(c, p))
            && self
                .meta_account_id
                .as_deref()
                .is_none_or(|id| meta_account(c).as_deref() == Some(id))
            && self.search.as_deref().is_none_or(|s| {
                c.name().to_lowercase().contains(s) || c.display_id.to_lowercase().contains(s)
            })
    }
}

fn on_network(c: &Campaign, network: &str) -> bool {
    match network {
        "meta" => c.meta,
        "google" => c.google,
        "apple_search_ads" => c.apple_search_ads,
        _ => false,
    }
}

/// Whether one of the campaign's store listings is for `platform` (`ios` or `android`).
pub(super) fn on_platform(c: &Campaign, platform: &str) -> bool {
    let of = |&i: &usize| LISTINGS[i].2.to_lowercase();
    c.store_listings.iter().any(|i| of(i) == platform)
}

/// The id of the ad account a META campaign is connected to, as text.
fn meta_account(c: &Campaign) -> Option<String> {
    match c.extra.get("network_account")?.get("id")? {
        Value::String(s) => Some(s.clone()),
        id => Some(id.to_string()),
    }
}
