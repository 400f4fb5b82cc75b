//! Which campaigns a run reads, in what order and from where.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::config::SyncConfig;
use crate::db::state::Checkpoint;
use crate::error::Failure;
use crate::model::campaign::CampaignRow;
use crate::model::run::UserTotals;
use crate::model::{time, window};
use crate::sync::trust::{self, Action};

/// A campaign waiting to be read, with what the list and its checkpoint say of it.
#[derive(Clone, Copy)]
pub(crate) struct Queued {
    /// Its place in the campaign list.
    pub index: usize,
    pub checkpoint: Option<Checkpoint>,
    /// Whether and why it is read.
    pub action: Action,
    /// Rows its counter says are new.
    pub expected: u64,
}

/// The campaigns to read, biggest first, so the run does not end waiting on one of them alone.
pub(crate) fn queue(
    config: &SyncConfig,
    listed: &[CampaignRow],
    checkpoints: &HashMap<String, Checkpoint>,
    pushed: &HashSet<String>,
    now: DateTime<Utc>,
) -> Vec<Queued> {
    let wanted: HashSet<&str> = config.campaigns.iter().map(String::as_str).collect();
    for id in &wanted {
        if !listed.iter().any(|c| c.display_id == *id) {
            tracing::warn!(
                campaign = id,
                "--campaign not in the campaign list; skipped"
            );
        }
    }
    let mut todo = listed
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_storable())
        .filter(|(_, c)| wanted.is_empty() || wanted.contains(c.display_id.as_str()))
        .map(|(index, c)| {
            let checkpoint = checkpoints.get(&c.display_id).copied();
            let action =
                trust::decide(config, c, checkpoint, now).pushed(pushed.contains(&c.display_id));
            Queued {
                index,
                checkpoint,
                action,
                expected: if action.reads() {
                    new_rows(c, checkpoint)
                } else {
                    0
                },
            }
        })
        .collect::<Vec<_>>();
    todo.sort_by_key(|q| std::cmp::Reverse(q.expected));
    todo
}

/// Counts the queued campaigns by why they are read.
pub(crate) fn count_actions(todo: &[Queued], totals: &mut UserTotals) {
    for q in todo {
        *match q.action {
            Action::Skip => continue,
            Action::Requested => &mut totals.campaigns_requested,
            Action::New => &mut totals.campaigns_new,
            Action::NoEvidence | Action::Untrusted => &mut totals.campaigns_untrusted,
            Action::Changed => &mut totals.campaigns_changed,
            Action::Due => &mut totals.campaigns_due,
            Action::Pushed => &mut totals.campaigns_pushed,
        } += 1;
    }
}

/// Rows the campaign list's counter says are new since the campaign was last read.
pub(crate) fn new_rows(campaign: &CampaignRow, checkpoint: Option<Checkpoint>) -> u64 {
    let counter = campaign.attributed_users.unwrap_or(0).max(0) as u64;
    let at_sync = checkpoint
        .and_then(|k| k.counter_at_sync)
        .unwrap_or(0)
        .max(0) as u64;
    counter.saturating_sub(at_sync)
}

/// Where a campaign's reading starts: `--since`, else the checkpoint less the lookback, else
/// the campaign's creation; never before [`time::earliest`].
pub(crate) fn start_of_plan(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
) -> DateTime<Utc> {
    let start = match (config.since, checkpoint) {
        (Some(since), _) => Some(since),
        (None, Some(c)) => c.synced_until.checked_sub_signed(config.lookback),
        (None, None) => Some(campaign.created_at.unwrap_or_else(time::fallback_origin)),
    };
    start.map_or(time::earliest(), |t| t.max(time::earliest()))
}

/// Refuses a campaign whose plan up to `end` would hold more than [`window::MAX_WINDOWS`]
/// windows, before any is made: a configuration problem (`--window` too short for its
/// history), the same on every run.
pub(crate) fn check_plan(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    end: DateTime<Utc>,
) -> Result<(), Failure> {
    let start = start_of_plan(config, campaign, checkpoint);
    let n = window::most_windows(config.window, start, end);
    if n <= window::MAX_WINDOWS {
        return Ok(());
    }
    Err(Failure::Config(format!(
        "campaign {}: reading from {} in windows of {} makes up to {n} windows, more than {}: use a longer --window, or --since to start later",
        crate::output::terminal::printable(&campaign.display_id),
        start.format("%Y-%m-%d %H:%M:%SZ"),
        time::human(config.window.nominal()),
        window::MAX_WINDOWS
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::ClientSettings;
    use secrecy::SecretString;

    pub(crate) fn config() -> SyncConfig {
        let api = ClientSettings {
            base_url: "http://127.0.0.1:9/api/v1".parse().unwrap(),
            api_key: SecretString::from("k"),
            rps: 10.0,
            timeout: std::time::Duration::from_secs(1),
            max_retries: 0,
            retry_min_delay: std::time::Duration::from_secs(1),
            retry_max_delay: std::time::Duration::from_secs(1),
        };
        SyncConfig {
            concurrency: 1,
            progress: false,
            ..SyncConfig::with_defaults(api, chrono_tz::UTC)
        }
    }

    pub(crate) fn campaign(counter: Option<i64>) -> CampaignRow {
        let raw = serde_json::json!({"display_id": "abc", "attributed_users": counter});
        CampaignRow::from_wire(&serde_json::value::to_raw_value(&raw).unwrap(), false)
    }
}
