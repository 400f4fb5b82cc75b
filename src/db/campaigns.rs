//! Campaigns and store listings from the campaign list, written as the model holds them.

use super::Schema;
use sqlx::PgConnection;

use crate::model::campaign::{CampaignRow, StoreListing};

/// Inserts the campaigns or updates those whose item changed (or that were deleted).
const UPSERT_CAMPAIGNS: &str = "INSERT INTO linkrunner.campaigns (display_id, name, created_at, update_at, google, meta,
             meta_campaign_id, meta_web_to_app, active, default_link, attributed_users, link,
             shareable_link, domain, raw)
         SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15::jsonb FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],
             $5::bool[], $6::bool[], $7::text[], $8::bool[], $9::bool[], $10::bool[], $11::int8[],
             $12::text[], $13::text[], $14::text[], $15::text[])
             AS t(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)
         ON CONFLICT (display_id) DO UPDATE SET
             name = EXCLUDED.name, created_at = EXCLUDED.created_at, update_at = EXCLUDED.update_at,
             google = EXCLUDED.google, meta = EXCLUDED.meta,
             meta_campaign_id = EXCLUDED.meta_campaign_id, meta_web_to_app = EXCLUDED.meta_web_to_app,
             active = EXCLUDED.active, default_link = EXCLUDED.default_link,
             attributed_users = EXCLUDED.attributed_users, link = EXCLUDED.link,
             shareable_link = EXCLUDED.shareable_link, domain = EXCLUDED.domain, raw = EXCLUDED.raw,
             changed_at = now(), deleted_at = NULL
         WHERE campaigns.raw IS DISTINCT FROM EXCLUDED.raw OR campaigns.deleted_at IS NOT NULL";

/// Upserts the listed campaigns and their store listings; returns how many were new or changed.
pub async fn upsert(
    schema: &Schema,
    conn: &mut PgConnection,
    campaigns: &[&CampaignRow],
) -> sqlx::Result<u64> {
    let ids: Vec<String> = campaigns.iter().map(|c| c.display_id.clone()).collect();
    let changed = upsert_campaigns(schema, conn, campaigns, &ids).await?;
    mark_seen(schema, conn, &ids).await?;
    upsert_listings(schema, conn, campaigns).await?;
    link_listings(schema, conn, campaigns, &ids).await?;
    Ok(changed)
}

/// Writes the campaigns' columns, one array per column; returns the rows new or changed.
async fn upsert_campaigns(
    schema: &Schema,
    conn: &mut PgConnection,
    campaigns: &[&CampaignRow],
    ids: &[String],
) -> sqlx::Result<u64> {
    let col =
        |f: fn(&CampaignRow) -> Option<String>| campaigns.iter().map(|c| f(c)).collect::<Vec<_>>();
    Ok(sqlx::query(&schema.sql(UPSERT_CAMPAIGNS))
        .bind(ids)
        .bind(col(|c| c.name.clone()))
        .bind(campaigns.iter().map(|c| c.created_at).collect::<Vec<_>>())
        .bind(campaigns.iter().map(|c| c.update_at).collect::<Vec<_>>())
        .bind(campaigns.iter().map(|c| c.google).collect::<Vec<_>>())
        .bind(campaigns.iter().map(|c| c.meta).collect::<Vec<_>>())
        .bind(col(|c| c.meta_campaign_id.clone()))
        .bind(
            campaigns
                .iter()
                .map(|c| c.meta_web_to_app)
                .collect::<Vec<_>>(),
        )
        .bind(campaigns.iter().map(|c| c.active).collect::<Vec<_>>())
        .bind(campaigns.iter().map(|c| c.default_link).collect::<Vec<_>>())
        .bind(
            campaigns
                .iter()
                .map(|c| c.attributed_users)
                .collect::<Vec<_>>(),
        )
        .bind(col(|c| c.link.clone()))
        .bind(col(|c| c.shareable_link.clone()))
        .bind(col(|c| c.domain.clone()))
        .bind(campaigns.iter().map(|c| c.raw.get()).collect::<Vec<_>>())
        .execute(conn)
        .await?
        .rows_affected())
}

/// Marks the campaigns seen now; rows inserted by this transaction already carry its now().
async fn mark_seen(schema: &Schema, conn: &mut PgConnection, ids: &[String]) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "UPDATE linkrunner.campaigns SET last_seen_at = now()
         WHERE display_id = ANY($1) AND last_seen_at <> now()",
    ))
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Upserts the campaigns' store listings.
async fn upsert_listings(
    schema: &Schema,
    conn: &mut PgConnection,
    campaigns: &[&CampaignRow],
) -> sqlx::Result<()> {
    let listings: Vec<&StoreListing> = campaigns.iter().flat_map(|c| &c.store_listings).collect();
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.store_listings (store_listing_id, name, platform)
         SELECT DISTINCT ON (id) id, name, platform
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(id, name, platform)
         ORDER BY id
         ON CONFLICT (store_listing_id) DO UPDATE SET
             name = EXCLUDED.name, platform = EXCLUDED.platform, last_seen_at = now()",
    ))
    .bind(listings.iter().map(|l| l.id.clone()).collect::<Vec<_>>())
    .bind(listings.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
    .bind(
        listings
            .iter()
            .map(|l| l.platform.clone())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records which campaign uses which store listing, dropping the pairs no longer listed.
async fn link_listings(
    schema: &Schema,
    conn: &mut PgConnection,
    campaigns: &[&CampaignRow],
    ids: &[String],
) -> sqlx::Result<()> {
    let (pair_campaign, pair_listing): (Vec<String>, Vec<String>) = campaigns
        .iter()
        .flat_map(|c| {
            c.store_listings
                .iter()
                .map(|l| (c.display_id.clone(), l.id.clone()))
        })
        .unzip();
    sqlx::query(
        &schema.sql("DELETE FROM linkrunner.campaign_store_listings c
         WHERE c.display_id = ANY($1)
           AND (c.display_id, c.store_listing_id) NOT IN (SELECT * FROM UNNEST($2::text[], $3::text[]))"),
    )
    .bind(ids)
    .bind(&pair_campaign)
    .bind(&pair_listing)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&schema.sql(
        "INSERT INTO linkrunner.campaign_store_listings (display_id, store_listing_id)
         SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
    ))
    .bind(&pair_campaign)
    .bind(&pair_listing)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks campaigns missing from a complete listing as deleted; their rows stay.
pub async fn mark_missing_deleted(
    schema: &Schema,
    conn: &mut PgConnection,
    listed: &[String],
) -> sqlx::Result<u64> {
    Ok(sqlx::query(&schema.sql(
        "UPDATE linkrunner.campaigns SET deleted_at = now()
         WHERE deleted_at IS NULL AND display_id <> ALL($1)",
    ))
    .bind(listed)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The stored campaigns not marked deleted.
pub async fn live(schema: &Schema, conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        &schema.sql("SELECT display_id FROM linkrunner.campaigns WHERE deleted_at IS NULL"),
    )
    .fetch_all(conn)
    .await
}

/// Marks one campaign deleted (it answered 404).
pub async fn mark_deleted(
    schema: &Schema,
    conn: &mut PgConnection,
    display_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(&schema.sql(
        "UPDATE linkrunner.campaigns SET deleted_at = now()
         WHERE display_id = $1 AND deleted_at IS NULL",
    ))
    .bind(display_id)
    .execute(conn)
    .await?;
    Ok(())
}
