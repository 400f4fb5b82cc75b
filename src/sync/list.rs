//! The campaign list: read whole, checked for completeness, and stored.

use std::collections::{HashMap, HashSet};

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::api::client::MAX_LIMIT;
use crate::api::{ApiClient, ApiError, Page};
use crate::db::campaigns;
use crate::db::{self, writer, Schema};
use crate::error::Failure;
use crate::model::campaign::CampaignRow;
use crate::model::user::Rejected;

/// Pages through the campaign list; `true` when one pass saw a steady, complete list and every
/// campaign in it can be stored. Campaigns that cannot be stored come last, with the reason in
/// `unstorable`: a run keeps them in `rejected_rows`, and marks no campaign deleted.
pub async fn fetch_campaigns(api: &ApiClient) -> Result<(Vec<CampaignRow>, bool), Failure> {
    let mut listing = Listing::default();
    let mut complete = false;
    for attempt in 1..=3 {
        let PassCount {
            expected,
            last_total,
            seen,
        } = read_pass(api, &mut listing).await?;
        if last_total == expected && seen as u64 >= expected {
            complete = true;
            break;
        }
        tracing::warn!(attempt, expected, seen, "campaign list moved while paging");
    }
    let complete = complete && listing.unstorable.is_empty();
    Ok((listing.into_list(), complete))
}

/// One pass over the list's pages, its items added to `listing`.
async fn read_pass(api: &ApiClient, listing: &mut Listing) -> Result<PassCount, Failure> {
    let first = api.campaigns(1, MAX_LIMIT).await.map_err(api_failure)?;
    let (expected, pages) = (first.total, first.pages);
    if pages > crate::sync::scan::MAX_PAGES_PER_RANGE {
        return Err(api_failure(ApiError::Protocol(format!(
            "the campaign list claims {pages} pages"
        ))));
    }
    let mut last_total = first.total;
    let mut pass = Pass::default();
    listing.take(&mut pass, first);
    for page in 2..=pages {
        let next = api.campaigns(page, MAX_LIMIT).await.map_err(api_failure)?;
        last_total = next.total;
        let short = next.items.len() < MAX_LIMIT as usize;
        listing.take(&mut pass, next);
        if short {
            break;
        }
    }
    Ok(PassCount {
        expected,
        last_total,
        seen: pass.storable.len() + pass.unstorable.len(),
    })
}

/// The totals a pass's first and last pages claimed, and the campaigns it saw.
struct PassCount {
    expected: u64,
    last_total: u64,
    seen: usize,
}

/// The campaigns one pass saw: storable ones by `display_id`, the others by their text.
#[derive(Default)]
struct Pass {
    storable: HashSet<String>,
    unstorable: HashSet<String>,
}

/// The campaigns every pass saw. Those that cannot be stored are kept by their text as
/// received: their display_ids may be missing or alike.
#[derive(Default)]
struct Listing {
    seen: HashMap<String, CampaignRow>,
    unstorable: HashMap<String, CampaignRow>,
}

impl Listing {
    /// Types a page's items as it arrives, so the raw pages are never all held at once.
    fn take(&mut self, pass: &mut Pass, page: Page) {
        for item in page.items {
            let c = CampaignRow::from_wire(&item, page.recoded);
            if c.is_storable() {
                pass.storable.insert(c.display_id.clone());
                self.seen.insert(c.display_id.clone(), c);
            } else {
                pass.unstorable.insert(c.raw.get().to_owned());
                self.unstorable.insert(c.raw.get().to_owned(), c);
            }
        }
    }

    /// The campaigns by `display_id`, then those that cannot be stored by their text.
    fn into_list(self) -> Vec<CampaignRow> {
        let mut listed: Vec<CampaignRow> = self.seen.into_values().collect();
        listed.sort_by(|a, b| a.display_id.cmp(&b.display_id));
        let mut unstorable: Vec<CampaignRow> = self.unstorable.into_values().collect();
        unstorable.sort_by(|a, b| a.raw.get().cmp(b.raw.get()));
        listed.extend(unstorable);
        listed
    }
}

/// Upserts the listed campaigns and their store listings; with `mark_deleted`, campaigns no
/// longer listed get `deleted_at`, unless the list holds one that cannot be stored (it may be
/// one already stored). Those are kept in `rejected_rows` by `campaign::read_all`; a campaign
/// Postgres itself refuses (a value past a type's range) is kept there by this function, and
/// counted in what it returns.
pub async fn store_campaigns(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    listed: &[CampaignRow],
    mark_deleted: bool,
) -> Result<u64, Failure> {
    let set_aside = listed.iter().filter(|c| !c.is_storable()).count();
    let storable: Vec<&CampaignRow> = listed.iter().filter(|c| c.is_storable()).collect();
    match write_list(schema, conn, &storable, mark_deleted && set_aside == 0).await {
        Err(e) if db::is_data_error(&e) => {}
        other => {
            return other
                .map(|()| 0)
                .map_err(|e| Failure::database(e, "storing campaigns"))
        }
    }
    tracing::warn!("Postgres refused a campaign of the list; trying each one");
    store_around_refusals(schema, conn, run_id, &storable).await
}

/// Keeps the campaigns Postgres refuses in `rejected_rows` and stores the rest, marking none
/// deleted; returns how many were refused.
async fn store_around_refusals(
    schema: &Schema,
    conn: &mut PgConnection,
    run_id: Uuid,
    storable: &[&CampaignRow],
) -> Result<u64, Failure> {
    let refused = db::refused(conn, storable, |conn, c| {
        Box::pin(async move { campaigns::upsert(schema, conn, &[*c]).await.map(drop) })
    })
    .await
    .map_err(|e| Failure::database(e, "storing campaigns"))?;
    let kept: Vec<(&str, Rejected)> = refused
        .iter()
        .map(|(i, message)| refused_campaign(storable[*i], message))
        .collect();
    writer::insert_rejected_campaigns(schema, conn, run_id, &kept)
        .await
        .map_err(|e| Failure::database(e, "keeping rejected campaigns"))?;
    let rest: Vec<&CampaignRow> = storable
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused.iter().any(|(r, _)| r == i))
        .map(|(_, c)| *c)
        .collect();
    write_list(schema, conn, &rest, false)
        .await
        .map_err(|e| Failure::database(e, "storing campaigns"))?;
    Ok(kept.len() as u64)
}

/// A campaign Postgres refused with `message`, as `rejected_rows` keeps it.
fn refused_campaign<'c>(c: &'c CampaignRow, message: &str) -> (&'c str, Rejected) {
    tracing::warn!(
        campaign = c.display_id,
        reason = message,
        "a campaign of the list cannot be stored: kept in rejected_rows; \
         no campaign is marked deleted this run"
    );
    let reason = format!("Postgres refused to store it: {message}");
    (
        c.display_id.as_str(),
        Rejected::new(reason, c.raw.get().to_owned()),
    )
}

/// Stores `listed` in one transaction, marking the campaigns not in it deleted when asked to.
async fn write_list(
    schema: &Schema,
    conn: &mut PgConnection,
    listed: &[&CampaignRow],
    mark_deleted: bool,
) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    // A thousand at a time: the session's write buffer keeps the size of the largest statement
    // it sent, and the whole list of a large project binds megabytes.
    let mut changed = 0;
    for chunk in listed.chunks(1000) {
        changed += campaigns::upsert(schema, &mut tx, chunk).await?;
    }
    if mark_deleted {
        let ids: Vec<String> = listed.iter().map(|c| c.display_id.clone()).collect();
        let gone = campaigns::mark_missing_deleted(schema, &mut tx, &ids).await?;
        if gone > 0 {
            tracing::info!(count = gone, "campaigns no longer listed marked deleted");
        }
    }
    tx.commit().await?;
    tracing::info!(
        listed = listed.len(),
        changed,
        deletions_checked = mark_deleted,
        "campaign list read"
    );
    Ok(())
}

/// What an API error ends the run as: a refused key or a base URL without the API behind it
/// is for the operator to fix; the rest passes.
pub(crate) fn api_failure(e: ApiError) -> Failure {
    match e {
        ApiError::Unauthorized { .. } => Failure::Auth(e.to_string()),
        ApiError::NotFound => Failure::Config(
            "the campaign list answered 404: there is no Linkrunner Data API at this base URL; check LINKRUNNER_BASE_URL (e.g. https://api.linkrunner.io/api/v1)".into(),
        ),
        other => Failure::Transient(anyhow::Error::new(other).context("reading the campaign list")),
    }
}
