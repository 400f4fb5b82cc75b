//! `sync --dry-run`: what a run would read, and roughly how long it would take, without writing.

use std::collections::HashMap;
use std::fmt::Write;

use chrono::Utc;
use sqlx::PgPool;

use crate::api::ApiClient;
use crate::config::SyncConfig;
use crate::db::state::{self, Checkpoint};
use crate::error::Failure;
use crate::model::window;
use crate::sync::campaign::{check_plan, new_rows};
use crate::sync::trust::{self, Action};
use crate::sync::{fetch_campaigns, start_of_plan};
use crate::terminal::printable;

/// Reads the campaign list and the checkpoints (if the schema exists) and renders the plan.
pub async fn dry_run(config: &SyncConfig, pool: &PgPool) -> Result<String, Failure> {
    let api = ApiClient::new(config.api.clone()).map_err(|e| Failure::Config(e.to_string()))?;
    let (listed, _) = fetch_campaigns(&api).await?;
    let checkpoints: HashMap<String, Checkpoint> = if schema_exists(pool).await? {
        state::checkpoints(pool)
            .await
            .map_err(|e| Failure::database(e, "reading checkpoints"))?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let now = Utc::now();
    let end = config.until.unwrap_or(now).min(now);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<9} {:<21} {:<21} {:>7} {:>9}",
        "campaign", "action", "from", "until", "windows", "requests"
    );
    let mut requests = listed.len().div_ceil(1000).max(1) as u64;
    let mut reading = 0;
    for campaign in listed
        .iter()
        .filter(|c| config.campaigns.is_empty() || config.campaigns.contains(&c.display_id))
    {
        if let Some(reason) = &campaign.unstorable {
            let _ = writeln!(out, "{:<14} rejected  {reason}", campaign.display_id);
            continue;
        }
        let checkpoint = checkpoints.get(&campaign.display_id).copied();
        let action = trust::decide(config, campaign, checkpoint, now);
        let id = printable(&campaign.display_id);
        if action == Action::Skip {
            let _ = writeln!(out, "{id:<14} {:<9}", action.word());
            continue;
        }
        check_plan(config, campaign, checkpoint, end)?;
        let start = start_of_plan(config, campaign, checkpoint);
        let planned = window::plan(config.timezone, config.window, start, end);
        let Some(first) = planned.first() else {
            continue;
        };
        // New rows since the last read, by the counter; at least one page to find out.
        let pages = new_rows(campaign, checkpoint)
            .div_ceil(u64::from(config.page_size))
            .max(1);
        requests += pages;
        reading += 1;
        let _ = writeln!(
            out,
            "{id:<14} {:<9} {:<21} {:<21} {:>7} {:>9}",
            action.word(),
            first.start.format("%Y-%m-%d %H:%M:%SZ"),
            end.format("%Y-%m-%d %H:%M:%SZ"),
            planned.len(),
            pages
        );
    }
    let seconds = requests as f64 / config.api.rps;
    let _ = writeln!(
        out,
        "\n{reading} of {} campaigns to read; about {requests} requests, {seconds:.0}s at {} requests/s (windows in {})",
        listed.len(),
        config.api.rps,
        config.timezone.name()
    );
    Ok(out)
}

async fn schema_exists(pool: &PgPool) -> Result<bool, Failure> {
    sqlx::query_scalar("SELECT to_regclass('linkrunner.sync_checkpoints') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| Failure::database(e, "reading the schema"))
}
