//! The campaign list: read whole, checked for completeness, and stored.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::{Connection, PgConnection};

use crate::api::client::MAX_LIMIT;
use crate::api::{ApiClient, ApiError};
use crate::db::campaigns::{self, CampaignRow};
use crate::error::Failure;

/// Pages through the campaign list; `true` when one pass saw a steady, complete list.
pub async fn fetch_campaigns(api: &ApiClient) -> Result<(Vec<CampaignRow>, bool), Failure> {
    let mut seen: HashMap<String, CampaignRow> = HashMap::new();
    let mut complete = false;
    for attempt in 1..=3 {
        let first = api.campaigns(1, MAX_LIMIT).await.map_err(api_failure)?;
        let (expected, pages) = (first.total, first.pages);
        let mut last_total = first.total;
        let mut this_pass = HashSet::new();
        // Each page is typed as it arrives, so the raw pages are never all held at once.
        let mut take = |items: Vec<Box<serde_json::value::RawValue>>| {
            for item in items {
                match CampaignRow::from_wire(&item) {
                    Some(c) => {
                        this_pass.insert(c.display_id.clone());
                        seen.insert(c.display_id.clone(), c);
                    }
                    None => tracing::warn!("campaign without a display_id in the list; skipped"),
                }
            }
        };
        take(first.items);
        for page in 2..=pages {
            let next = api.campaigns(page, MAX_LIMIT).await.map_err(api_failure)?;
            last_total = next.total;
            let short = next.items.len() < MAX_LIMIT as usize;
            take(next.items);
            if short {
                break;
            }
        }
        if last_total == expected && this_pass.len() as u64 >= expected {
            complete = true;
            break;
        }
        tracing::warn!(
            attempt,
            expected,
            seen = this_pass.len(),
            "campaign list moved while paging"
        );
    }
    let mut listed: Vec<CampaignRow> = seen.into_values().collect();
    listed.sort_by(|a, b| a.display_id.cmp(&b.display_id));
    Ok((listed, complete))
}

/// Upserts the listed campaigns and their store listings; with `mark_deleted`, campaigns no
/// longer listed get `deleted_at`.
pub async fn store_campaigns(
    conn: &mut PgConnection,
    listed: &[CampaignRow],
    mark_deleted: bool,
) -> Result<(), Failure> {
    let mut tx = conn.begin().await.context("storing campaigns")?;
    // A thousand at a time: the session's write buffer keeps the size of the largest statement
    // it sent, and the whole list of a large project binds megabytes.
    let mut changed = 0;
    for chunk in listed.chunks(1000) {
        changed += campaigns::upsert(&mut tx, chunk)
            .await
            .context("storing campaigns")?;
    }
    if mark_deleted {
        let ids: Vec<String> = listed.iter().map(|c| c.display_id.clone()).collect();
        let gone = campaigns::mark_missing_deleted(&mut tx, &ids)
            .await
            .context("marking deleted campaigns")?;
        if gone > 0 {
            tracing::info!(count = gone, "campaigns no longer listed marked deleted");
        }
    }
    tx.commit().await.context("storing campaigns")?;
    tracing::info!(
        listed = listed.len(),
        changed,
        deletions_checked = mark_deleted,
        "campaign list read"
    );
    Ok(())
}

fn api_failure(e: ApiError) -> Failure {
    match e {
        ApiError::Unauthorized { .. } => Failure::Auth(e.to_string()),
        ApiError::NotFound => Failure::Config(
            "the campaign list answered 404: there is no Linkrunner Data API at this base URL; check LINKRUNNER_BASE_URL (e.g. https://api.linkrunner.io/api/v1)".into(),
        ),
        other => Failure::Transient(anyhow::Error::new(other).context("reading the campaign list")),
    }
}
