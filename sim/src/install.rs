//! What the simulator remembers of an app install seen on the client API.

use crate::row::ad_ids;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A simulated app install, keyed by `install_instance_id`.
#[derive(Clone, Default)]
pub(crate) struct Install {
    /// First `init`; `None` while only `handle-deeplink` has been seen.
    pub(crate) installed_at: Option<DateTime<Utc>>,
    pub(crate) device_data: Option<Value>,
    /// (uid, display id) of the campaign the install was attributed to; the first link wins.
    pub(crate) campaign: Option<(u64, String)>,
    /// Name at attribution time, for `attribution-data` after the campaign is gone.
    pub(crate) campaign_name: String,
    pub(crate) link: Option<String>,
    pub(crate) store_click_at: Option<DateTime<Utc>>,
    /// The `app_version` of the latest `init` that sent one.
    pub(crate) app_version: Option<String>,
    /// Users who signed up while the install had no campaign: they make no row anywhere, but
    /// `get-attribution-result` answers them as organic.
    pub(crate) organic_signups: Vec<OrganicSignup>,
}

/// A signup (`trigger`) of a user id on an install without a campaign; a later login of the
/// same user keeps the first one.
#[derive(Clone)]
pub(crate) struct OrganicSignup {
    pub(crate) user_id: String,
    pub(crate) at: DateTime<Utc>,
    /// The uid the trigger drew, which orders signups of the same millisecond by arrival.
    pub(crate) seq: u64,
}

impl Install {
    /// The advertising ids of the device data its `init` sent.
    pub(crate) fn ad_ids(&self) -> impl Iterator<Item = &str> {
        ad_ids(self.device_data.as_ref())
    }

    /// True when its advertising id is `id`, in any letter case.
    pub(crate) fn has_device(&self, id: &str) -> bool {
        self.ad_ids().any(|a| a.eq_ignore_ascii_case(id))
    }

    /// Records a signup of `user_id` unless that user already signed up here; when the kept
    /// signup happened.
    pub(crate) fn sign_up_organically(
        &mut self,
        user_id: &str,
        at: DateTime<Utc>,
        seq: u64,
    ) -> DateTime<Utc> {
        if let Some(s) = self.organic_signups.iter().find(|s| s.user_id == user_id) {
            return s.at;
        }
        let user_id = user_id.to_string();
        self.organic_signups
            .push(OrganicSignup { user_id, at, seq });
        at
    }
}
