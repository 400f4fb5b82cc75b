//! The guard against a key of another project: a complete campaign list marks every stored
//! campaign it does not hold deleted, so a list that would take most of them at once, or that
//! holds none of them, is refused before anything is stored.

use std::collections::HashSet;

use sqlx::PgConnection;

use crate::config::SyncConfig;
use crate::db::{campaigns, state};
use crate::error::Failure;
use crate::model::campaign::CampaignRow;

/// Judges the list when the run would mark deletions with it (complete, no `--campaign`) and
/// `--accept-deletions` is not given; a database without the schema holds nothing to lose.
pub(crate) async fn judge(
    config: &SyncConfig,
    conn: &mut PgConnection,
    listed: &[CampaignRow],
    complete: bool,
) -> Result<(), Failure> {
    let Some(share) = config.max_deleted_share else {
        return Ok(());
    };
    if !complete || !config.campaigns.is_empty() {
        return Ok(());
    }
    let live = async {
        if !state::schema_exists(&config.schema, &mut *conn).await? {
            return Ok(Vec::new());
        }
        campaigns::live(&config.schema, conn).await
    };
    let live = live
        .await
        .map_err(|e: sqlx::Error| Failure::database(e, "reading the stored campaigns"))?;
    check(listed, &live, share)
}

/// Refuses `listed` when it would mark more than `share` of the `live` stored campaigns
/// deleted, or holds none of them (while there are some).
pub(crate) fn check(listed: &[CampaignRow], live: &[String], share: f64) -> Result<(), Failure> {
    if live.is_empty() {
        return Ok(());
    }
    let listed: HashSet<&str> = listed.iter().map(|c| c.display_id.as_str()).collect();
    let gone = live
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .count();
    let why = if gone == live.len() {
        format!(
            "holds none of the {} campaigns this database holds",
            live.len()
        )
    } else if gone as f64 > share * live.len() as f64 {
        format!(
            "would mark {gone} of the {} campaigns this database holds deleted, more than \
             --max-deleted-share {share}",
            live.len()
        )
    } else {
        return Ok(());
    };
    Err(Failure::OtherProject(format!(
        "the campaign list {why}: the API key seems to belong to another project than this \
         database's; nothing was stored (if the campaigns really were deleted, run again with \
         --accept-deletions)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(ids: &[&str]) -> Vec<CampaignRow> {
        ids.iter()
            .map(|id| CampaignRow {
                display_id: (*id).to_owned(),
                ..crate::sync::queue::tests::campaign(None)
            })
            .collect()
    }

    fn live(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn most_or_all_of_the_stored_campaigns_gone_at_once_is_refused() {
        let stored = live(&["a", "b", "c", "d"]);
        // Two of four gone is half: allowed at 0.5; three is more.
        assert!(check(&listed(&["a", "b", "x"]), &stored, 0.5).is_ok());
        let err = check(&listed(&["a", "x"]), &stored, 0.5).unwrap_err();
        assert!(
            matches!(&err, Failure::OtherProject(m) if m.contains("mark 3 of the 4")),
            "{err}"
        );
        // None of them listed: refused whatever the share.
        let err = check(&listed(&["x", "y"]), &stored, 1.0).unwrap_err();
        assert!(err.to_string().contains("holds none of the 4"), "{err}");
        assert!(check(&listed(&[]), &stored, 1.0).is_err());
        // A new warehouse, or a list that grew, is never refused.
        assert!(check(&listed(&["x"]), &[], 0.0).is_ok());
        assert!(check(&listed(&["a", "b", "c", "d", "e"]), &stored, 0.0).is_ok());
        assert_eq!(err.code(), crate::error::code::OTHER_PROJECT);
    }
}
