//! What the simulator remembers of an app install seen on the client API.

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
}
