//! The attributed users: the campaign list stored, and each campaign's rows read from its
//! checkpoint.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::Mutex;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::config::SyncConfig;
use crate::db::state::{self, Checkpoint};
use crate::db::webhooks;
use crate::db::{RunLock, Schema};
use crate::error::{self, Failure};
use crate::model::campaign::CampaignRow;
use crate::model::run::UserTotals;
use crate::model::window;
use crate::output::terminal::printable;
use crate::sync::campaign::{self, Read};
use crate::sync::list;
use crate::sync::queue::{check_plan, new_rows, start_of_plan};
use crate::sync::run::Run;
use crate::sync::stream::{Ended, Planning, Shared, Step, Stream, Synced};
use crate::sync::trust::{self, Action};

/// The attributed-users stream; every run reads it.
#[derive(Default)]
pub(crate) struct Users {
    /// Read while the run is prepared: the checkpoints, and the campaigns a signup webhook
    /// marked due.
    known: Mutex<(HashMap<String, Checkpoint>, HashSet<String>)>,
}

impl Stream for Users {
    fn prepare<'a>(&'a self, run: &'a Run, conn: &'a mut PgConnection) -> Step<'a, ()> {
        Box::pin(async move {
            let schema = &run.config.schema;
            let read = state::checkpoints(schema, &mut *conn)
                .await
                .context("reading checkpoints")?;
            let pushed = webhooks::due(schema, conn)
                .await
                .context("reading the campaigns webhooks marked due")?;
            *self.known.lock().expect("not poisoned") =
                (read.into_iter().collect(), pushed.into_iter().collect());
            Ok(())
        })
    }

    fn plan<'a>(&'a self, plan: &'a Planning<'a>) -> Step<'a, String> {
        Box::pin(plan_users(plan))
    }

    fn sync<'a>(&'a self, shared: &'a Shared<'a>) -> Synced<'a> {
        let known = std::mem::take(&mut *self.known.lock().expect("not poisoned"));
        Synced::Within(Box::pin(async move {
            let mut totals = UserTotals::default();
            let result = sync_users(shared, known, &mut totals).await;
            Ended::new(move |t| t.users = totals, result)
        }))
    }
}

/// Stores the campaign list and reads the campaigns.
async fn sync_users(
    shared: &Shared<'_>,
    known: (HashMap<String, Checkpoint>, HashSet<String>),
    totals: &mut UserTotals,
) -> Result<(), Failure> {
    let Shared {
        run,
        lock,
        listed,
        reads_done,
    } = shared;
    totals.campaigns_listed = listed.campaigns.len() as u64;
    let mark_deleted = listed.complete && run.config.campaigns.is_empty();
    // Nothing a campaign's reading writes depends on the campaigns table, so the list is
    // stored while the campaigns are read; only a 404's deletion mark waits for it.
    let (stored, campaigns_stored) = tokio::sync::watch::channel(false);
    let store = store_list(run, lock, &listed.campaigns, mark_deleted, stored);
    let read = async {
        let read = campaign::read_all(
            run,
            (listed.campaigns.clone(), listed.at),
            known,
            campaigns_stored,
            totals,
        )
        .await;
        reads_done.send_replace(true);
        read
    };
    let (stored, read) = tokio::join!(store, read);
    // The list's failure is weighed against the reads' (`error::worst`).
    let stored = stored.map(|rejected| totals.rows_rejected += rejected);
    let Read {
        skipped,
        read,
        first_error,
    } = match read {
        Ok(read) => read,
        Err(e) => return error::worst(Err(e), stored),
    };
    // A campaign read to the run's end has the rows its signup webhooks announced, unless the
    // API does not serve them yet: its mark stays until it does, or the lookback has passed.
    if run.config.until.is_none() && !read.is_empty() {
        webhooks::clear_due(
            &run.config.schema,
            &mut *lock.live_session().await?,
            &read,
            listed.at,
            run.config.lookback,
        )
        .await
        .context("clearing the campaigns webhooks marked due")?;
    }
    if stored.is_ok() && !skipped.is_empty() {
        state::mark_checked(
            &run.config.schema,
            &mut *lock.live_session().await?,
            &skipped,
        )
        .await
        .context("recording campaigns confirmed by their trusted counters")?;
    }
    let read = match first_error {
        Some(e) => Err(Failure::from(e.context(format!(
            "{} of {} campaigns failed",
            totals.campaigns_failed,
            totals.campaigns_failed + totals.campaigns_synced
        )))),
        None => Ok(()),
    };
    error::worst(read, stored)
}

/// Stores the campaign list, then says so on `stored`; returns the campaigns set aside.
async fn store_list(
    run: &Run,
    lock: &RunLock,
    listed: &[CampaignRow],
    mark_deleted: bool,
    stored: tokio::sync::watch::Sender<bool>,
) -> Result<u64, Failure> {
    let mut session = lock.session().await;
    let result = list::store_campaigns(
        &run.config.schema,
        &mut session,
        run.run_id,
        listed,
        mark_deleted,
    )
    .await;
    stored.send_replace(true);
    result
}

/// The dry run's table: each campaign, why it would be read, its range and requests.
async fn plan_users(plan: &Planning<'_>) -> Result<String, Failure> {
    let Planning {
        config,
        pool,
        listed,
    } = plan;
    let (checkpoints, pushed) = stored_checkpoints(&config.schema, pool).await?;
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
        let marked = pushed.contains(&campaign.display_id);
        let known = (checkpoint, marked);
        if let Some(pages) = plan_campaign(&mut out, config, campaign, known, (now, end))? {
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
    Ok(out)
}

/// The checkpoints and the campaigns webhooks marked due, or none before the schema exists: a
/// dry run creates nothing.
async fn stored_checkpoints(
    schema: &Schema,
    pool: &PgPool,
) -> Result<(HashMap<String, Checkpoint>, HashSet<String>), Failure> {
    let read = async {
        if !state::schema_exists(schema, pool).await? {
            return Ok(Default::default());
        }
        let checkpoints = state::checkpoints(schema, pool)
            .await?
            .into_iter()
            .collect();
        let mut conn = pool.acquire().await?;
        let pushed = match state::table_exists(&mut *conn, &schema.table("webhook_due")).await? {
            true => webhooks::due(schema, &mut conn)
                .await?
                .into_iter()
                .collect(),
            false => HashSet::new(),
        };
        Ok((checkpoints, pushed))
    };
    read.await
        .map_err(|e: sqlx::Error| Failure::database(e, "reading checkpoints"))
}
/// Writes the campaign's line of the plan; the requests it would take when it is read.
fn plan_campaign(
    out: &mut String,
    config: &SyncConfig,
    campaign: &CampaignRow,
    (checkpoint, marked): (Option<Checkpoint>, bool),
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
    let action = trust::decide(config, campaign, checkpoint, now).pushed(marked);
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
