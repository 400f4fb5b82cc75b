//! `sync --dry-run`: what a run would read, and roughly how long it would take, without writing.

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::api::ApiClient;
use crate::config::{LookupSettings, ReportingSettings, SyncConfig};
use crate::db::state::{self, Checkpoint};
use crate::db::Schema;
use crate::db::{self, lookups};
use crate::error::Failure;
use crate::model::campaign::CampaignRow;
use crate::model::window;
use crate::sync::queue::{check_plan, new_rows};
use crate::sync::trust::{self, Action};
use crate::sync::{fetch_campaigns, start_of_plan};
use crate::sync::{guard, lookup, reporting};
use crate::terminal::printable;

/// Reads the campaign list and the checkpoints (if the schema exists) and renders the plan.
pub async fn dry_run(config: &SyncConfig, pool: &PgPool) -> Result<String, Failure> {
    let api = ApiClient::new(config.api.clone()).map_err(|e| Failure::Config(e.to_string()))?;
    let (listed, complete) = fetch_campaigns(&api).await?;
    let checkpoints = stored_checkpoints(&config.schema, pool).await?;
    judge_list(config, pool, &listed, complete).await?;
    let now = Utc::now();
    let end = config.until.unwrap_or(now).min(now);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<21} {:<21} {:<21} {:>7} {:>9}",
        "campaign", "read because", "from", "until", "windows", "requests"
    );
    let mut requests = listed.len().div_ceil(1000).max(1) as u64;
    let mut reading = 0;
    for campaign in listed
        .iter()
        .filter(|c| config.campaigns.is_empty() || config.campaigns.contains(&c.display_id))
    {
        let checkpoint = checkpoints.get(&campaign.display_id).copied();
        if let Some(pages) = plan_campaign(&mut out, config, campaign, checkpoint, (now, end))? {
            requests += pages;
            reading += 1;
        }
    }
    let seconds = requests as f64 / config.api.rps;
    let _ = writeln!(
        out,
        "\n{reading} of {} campaigns to read; about {requests} requests, {seconds:.0}s at {} requests/s (windows in {})",
        listed.len(),
        config.api.rps,
        config.timezone.name()
    );
    if let Some(settings) = &config.reporting {
        out.push_str(&plan_reporting(config, settings, pool, &listed).await?);
    }
    if let Some(settings) = &config.lookups {
        out.push_str(&plan_lookups(&config.schema, pool, config.api.rps, settings).await?);
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

/// The Reporting API's days due, and what they cost at the reporting pace.
async fn plan_reporting(
    config: &SyncConfig,
    settings: &ReportingSettings,
    pool: &PgPool,
    listed: &[CampaignRow],
) -> Result<String, Failure> {
    let created: Vec<_> = listed.iter().map(|c| c.created_at).collect();
    let Some(plan) = reporting::day_plan(settings, &created, Utc::now(), config.rescan) else {
        return Ok("reporting: the project has no campaigns; no days to read\n".into());
    };
    let schema = &config.schema;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| Failure::database(e, "connecting"))?;
    let exists = state::table_exists(&mut *conn, &schema.table("reporting_pace"))
        .await
        .map_err(|e| Failure::database(e, "reading the schema"))?;
    let other = match exists {
        true => reporting::other_timezone(schema, &mut conn, settings, config.rescan).await?,
        false => None,
    };
    // Before the schema exists, or when the days were read in another zone, every day is read
    // from its first page.
    let read = (exists && other.is_none()).then_some(&mut *conn);
    let due = reporting::days_due(schema, read, &plan, &settings.views).await?;
    let pages: Vec<u64> = due
        .iter()
        .map(|(_, d)| reporting::pages_of_day(settings.timezone, d.day, &created))
        .collect();
    let requests: u64 = due
        .iter()
        .zip(&pages)
        .map(|((_, d), pages)| pages.saturating_sub(u64::from(d.page) - 1).max(1))
        .sum();
    let recent = due.iter().filter(|(_, d)| d.recent(&plan)).count();
    let mut out = String::new();
    if let Some(other) = other {
        let _ = writeln!(
            out,
            "reporting: the days read in {other} are read again in {}",
            settings.timezone.name()
        );
    }
    let _ = writeln!(
        out,
        "reporting: {} days due ({recent} recent, {} older) from {} to {} in {}; about {requests} requests, {:.0} min at {} a minute; this run makes at most {}, so about {} runs",
        due.len(),
        due.len() - recent,
        plan.first,
        plan.last.min(plan.today),
        settings.timezone.name(),
        requests as f64 / settings.rpm,
        settings.rpm,
        settings.max_requests,
        requests.div_ceil(u64::from(settings.max_requests)),
    );
    for ((view, d), pages) in due.iter().zip(&pages).take(10) {
        let _ = writeln!(
            out,
            "  {} {view:<16} page {} of about {pages}",
            d.day, d.page
        );
    }
    if due.len() > 10 {
        let _ = writeln!(out, "  … and {} more days", due.len() - 10);
    }
    Ok(out)
}

/// The look-ups due now, and what they cost; the rows the run stores may make more due.
async fn plan_lookups(
    schema: &Schema,
    pool: &PgPool,
    rps: f64,
    settings: &LookupSettings,
) -> Result<String, Failure> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| Failure::database(e, "connecting"))?;
    lookup::check_sources(&mut conn, &settings.sources).await?;
    let results = schema.table("attribution_results");
    let migrated = state::table_exists(&mut *conn, &results)
        .await
        .map_err(|e| Failure::database(e, "reading the schema"))?;
    if !migrated {
        return Ok(format!(
            "attribution look-ups: the run creates {}.attribution_results, then looks up every id it holds (at most {} this run)\n",
            schema.name(),
            settings.max
        ));
    }
    let due = lookups::due_count(schema, &mut conn, &settings.sources)
        .await
        .map_err(|e| Failure::database(e, "counting the look-ups due"))? as u64;
    let this_run = due.min(settings.max);
    Ok(format!(
        "{due} attribution look-ups due, {this_run} this run (--max-lookups {}), plus any for the rows it stores; about {:.0}s at {rps} requests/s, in the requests the reads leave\n",
        settings.max,
        this_run as f64 / rps
    ))
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

/// The checkpoints, or none before the schema exists: a dry run creates nothing.
async fn stored_checkpoints(
    schema: &Schema,
    pool: &PgPool,
) -> Result<HashMap<String, Checkpoint>, Failure> {
    let read = async {
        if !state::schema_exists(schema, pool).await? {
            return Ok(HashMap::new());
        }
        Ok(state::checkpoints(schema, pool)
            .await?
            .into_iter()
            .collect())
    };
    read.await
        .map_err(|e: sqlx::Error| Failure::database(e, "reading checkpoints"))
}

/// Writes the campaign's line of the plan; the requests it would take when it is read.
fn plan_campaign(
    out: &mut String,
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    (now, end): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Option<u64>, Failure> {
    if let Some(reason) = &campaign.unstorable {
        let _ = writeln!(
            out,
            "{:<14} {:<21} {reason}",
            campaign.display_id, "rejected"
        );
        return Ok(None);
    }
    let action = trust::decide(config, campaign, checkpoint, now);
    let id = printable(&campaign.display_id);
    if action == Action::Skip {
        let _ = writeln!(out, "{id:<14} {:<21}", action.word());
        return Ok(None);
    }
    check_plan(config, campaign, checkpoint, end)?;
    let start = start_of_plan(config, campaign, checkpoint);
    let planned = window::plan(config.timezone, config.window, start, end);
    let Some(first) = planned.first() else {
        return Ok(None);
    };
    // New rows since the last read, by the counter; at least one page to find out.
    let pages = new_rows(campaign, checkpoint)
        .div_ceil(u64::from(config.page_size))
        .max(1);
    let _ = writeln!(
        out,
        "{id:<14} {:<21} {:<21} {:<21} {:>7} {:>9}",
        action.word(),
        first.start.format("%Y-%m-%d %H:%M:%SZ"),
        end.format("%Y-%m-%d %H:%M:%SZ"),
        planned.len(),
        pages
    );
    Ok(Some(pages))
}
