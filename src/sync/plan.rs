//! `sync --dry-run`: what a run would read, and roughly how long it would take, without writing.

use sqlx::PgPool;

use crate::api::ApiClient;
use crate::config::SyncConfig;
use crate::db;
use crate::error::Failure;
use crate::model::campaign::CampaignRow;
use crate::sync::guard;
use crate::sync::list::fetch_campaigns;
use crate::sync::stream::Planning;
use crate::sync::streams;

/// Reads the campaign list and the checkpoints (if the schema exists) and renders each
/// stream's plan.
pub async fn dry_run(config: &SyncConfig, pool: &PgPool) -> Result<String, Failure> {
    let api = ApiClient::new(config.api.clone()).map_err(|e| Failure::Config(e.to_string()))?;
    let (listed, complete) = fetch_campaigns(&api).await?;
    judge_list(config, pool, &listed, complete).await?;
    let plan = Planning {
        config,
        pool,
        listed: &listed,
    };
    let mut out = String::new();
    for stream in streams::of(config) {
        out.push_str(&stream.plan(&plan).await?);
    }
    let rewrite = config.rewrite_personal_data;
    match db::personal::preview(&config.schema, pool, &config.personal, rewrite).await {
        Ok(line) => out.push_str(&line),
        Err(e) => {
            return Err(match e.downcast::<db::personal::Disagrees>() {
                Ok(why) => Failure::Config(why.0),
                Err(e) => e.context("reading the personal-data mode").into(),
            })
        }
    }
    Ok(out)
}

/// Stops the dry run as the run would stop, when the list looks like another project's
/// ([`guard`]).
async fn judge_list(
    config: &SyncConfig,
    pool: &PgPool,
    listed: &[CampaignRow],
    complete: bool,
) -> Result<(), Failure> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| Failure::database(e, "connecting"))?;
    guard::judge(config, &mut conn, listed, complete).await
}
