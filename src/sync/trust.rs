//! Whether a run reads a campaign, and why. A campaign is skipped only while its
//! `attributed_users` counter has been seen to agree with its rows and has not moved since: the
//! counters can lag, read 0 or disagree with the rows, and a skipped campaign whose counter lies
//! would hide its late rows.

use chrono::{DateTime, Utc};

use crate::config::SyncConfig;
use crate::db::state::Checkpoint;
use crate::model::campaign::CampaignRow;

/// What a run does with a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Its trusted counter has not moved since it was last read to a run's end.
    Skip,
    /// `--since` or `--rescan` asks for it.
    Requested,
    /// Never read to a run's end.
    New,
    /// Its counter has agreed only with zero rows, which proves nothing: a counter that always
    /// reads 0 agrees with every empty campaign.
    NoEvidence,
    /// Its counter has not been seen to agree with its rows (or is on probation after it
    /// disagreed), so only a read tells whether it changed.
    Untrusted,
    /// Its trusted counter moved.
    Changed,
    /// Its trusted counter has not moved, but `--full-scan-every` has come round.
    Due,
    /// Its trusted counter has not moved, but a signup webhook says it has a new row.
    Pushed,
}

impl Action {
    pub fn reads(self) -> bool {
        self != Action::Skip
    }

    /// The action once the webhooks have had their say: a campaign a signup event marked due
    /// is read whatever its counter says.
    pub fn pushed(self, marked: bool) -> Action {
        match self {
            Action::Skip if marked => Action::Pushed,
            other => other,
        }
    }

    /// Why the campaign is read, as the dry run prints it.
    pub fn word(self) -> &'static str {
        match self {
            Action::Skip => "skip",
            Action::Requested => "requested",
            Action::New => "never read",
            Action::NoEvidence => "no evidence yet",
            Action::Untrusted => "counter disagrees",
            Action::Changed => "counter moved",
            Action::Due => "due for the full scan",
            Action::Pushed => "webhook signup",
        }
    }
}

/// Decides what this run does with `campaign`.
pub fn decide(
    config: &SyncConfig,
    campaign: &CampaignRow,
    checkpoint: Option<Checkpoint>,
    now: DateTime<Utc>,
) -> Action {
    if config.since.is_some() || config.rescan {
        return Action::Requested;
    }
    let Some(
        k @ Checkpoint {
            verified_at: Some(verified_at),
            ..
        },
    ) = checkpoint
    else {
        return Action::New;
    };
    if !k.trusted(now) {
        match k.rows_at_sync {
            Some(0) if k.counter_at_sync == Some(0) => Action::NoEvidence,
            _ => Action::Untrusted,
        }
    } else if campaign.attributed_users != k.counter_at_sync {
        Action::Changed
    } else if now - verified_at >= full_scan_interval(config, &campaign.display_id) {
        Action::Due
    } else {
        Action::Skip
    }
}

/// `--full-scan-every`, spread per campaign over its last quarter, so campaigns read together
/// do not all come due in the same run.
fn full_scan_interval(config: &SyncConfig, display_id: &str) -> chrono::Duration {
    let spread = display_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    config.full_scan_every - config.full_scan_every * spread as i32 / 4000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::queue::tests::{campaign, config};
    use chrono::Duration;

    /// Read to its end `hours_ago` with `counter`; trusted from `trusted_hours_ago` if given.
    fn checkpoint(
        counter: Option<i64>,
        hours_ago: i64,
        trusted_hours_ago: Option<i64>,
    ) -> Checkpoint {
        let now = Utc::now();
        Checkpoint {
            covered_from: now - Duration::days(30),
            synced_until: now - Duration::hours(hours_ago),
            counter_at_sync: counter,
            verified_at: Some(now - Duration::hours(hours_ago)),
            rows_at_sync: counter,
            trusted_from: trusted_hours_ago.map(|h| now - Duration::hours(h)),
        }
    }

    fn action(config: &SyncConfig, counter: Option<i64>, k: Option<Checkpoint>) -> Action {
        decide(config, &campaign(counter), k, Utc::now())
    }

    #[test]
    fn a_webhook_reads_only_what_would_be_skipped() {
        assert_eq!(Action::Skip.pushed(true), Action::Pushed);
        assert_eq!(Action::Skip.pushed(false), Action::Skip);
        assert_eq!(Action::Untrusted.pushed(true), Action::Untrusted);
        assert!(Action::Pushed.reads());
    }

    #[test]
    fn skips_only_a_trusted_counter_that_has_not_moved_lately() {
        let c = config();
        let trusted = |counter, hours| Some(checkpoint(counter, hours, Some(hours)));
        assert_eq!(action(&c, Some(7), trusted(Some(7), 1)), Action::Skip);
        assert_eq!(action(&c, Some(8), trusted(Some(7), 1)), Action::Changed);
        assert_eq!(action(&c, Some(7), trusted(Some(7), 7)), Action::Due);
        assert_eq!(action(&c, Some(7), None), Action::New);
        // A counter that never agreed with the rows, or reads null, is not trusted.
        let untrusted = Some(checkpoint(Some(7), 1, None));
        assert_eq!(action(&c, Some(7), untrusted), Action::Untrusted);
        assert_eq!(action(&c, None, trusted(None, 1)), Action::Untrusted);
        // On probation: trusted only from an hour on.
        let probation = Some(checkpoint(Some(7), 1, Some(-1)));
        assert_eq!(action(&c, Some(7), probation), Action::Untrusted);
        // 0 = 0 earned nothing; 0 beside rows is a counter that disagrees.
        let empty = Some(checkpoint(Some(0), 1, None));
        assert_eq!(action(&c, Some(0), empty), Action::NoEvidence);
        let zero_over_rows = Some(Checkpoint {
            rows_at_sync: Some(3),
            ..checkpoint(Some(0), 1, None)
        });
        assert_eq!(action(&c, Some(0), zero_over_rows), Action::Untrusted);
    }

    #[test]
    fn since_and_rescan_read_everything() {
        let trusted = Some(checkpoint(Some(7), 1, Some(1)));
        let backfill = SyncConfig {
            since: Some(Utc::now() - Duration::days(9)),
            ..config()
        };
        assert_eq!(action(&backfill, Some(7), trusted), Action::Requested);
        let rescan = SyncConfig {
            rescan: true,
            ..config()
        };
        assert_eq!(action(&rescan, Some(7), trusted), Action::Requested);
    }
}
