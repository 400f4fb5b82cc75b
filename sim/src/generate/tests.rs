//! The data set's promised shape.

use super::instants::tricky_instants;
use super::*;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

fn instant(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn tricky_instants_hold_dst_changes_and_midnights() {
    let cfg = SimConfig::small(1);
    let tricky = tricky_instants(cfg.start, cfg.end);
    for t in [
        "2026-03-08T07:00:00Z",
        "2026-11-01T06:00:00Z",
        "2026-03-08T06:59:59.999Z",
        "2026-04-30T18:30:00Z",
        "2026-06-01T00:00:00.001Z",
    ] {
        assert!(tricky.contains(&instant(t)), "{t} missing");
    }
    // Lord Howe moves by 30 minutes (2026-04-04T15:00Z), Santiago at local midnight.
    assert!(tricky.contains(&instant("2026-04-04T15:00:00Z")));
    assert!(tricky.contains(&instant("2026-04-05T03:00:00Z")));
}

#[test]
fn data_set_has_the_promised_shape() {
    let cfg = SimConfig::small(7);
    let (campaigns, _) = generate(&cfg);
    assert_eq!(campaigns.len(), 8);
    assert_eq!(campaigns.iter().map(|c| c.rows().len()).sum::<usize>(), 600);
    assert_eq!(campaigns.iter().filter(|c| c.default_link).count(), 1);
    assert!(campaigns.iter().filter(|c| c.rows().len() == 0).count() >= 2);
    assert!(campaigns.iter().any(|c| c.rows().len() >= 180));
    let tricky: HashSet<_> = tricky_instants(cfg.start, cfg.end).into_iter().collect();
    let mut keys = HashSet::new();
    let (mut on_tricky, mut null_ids) = (0, 0);
    for c in &campaigns {
        assert!(c.update_at >= c.created_at);
        for r in c.rows().iter() {
            let at = r.attributed_at();
            assert!(at >= c.created_at && at <= cfg.end);
            on_tricky += usize::from(tricky.contains(&at));
            match r.user_id() {
                Some(id) => assert!(keys.insert((c.uid, id.into_owned(), at))),
                None => null_ids += 1,
            }
        }
    }
    assert!(
        (30..=120).contains(&on_tricky),
        "{on_tricky} rows on tricky instants"
    );
    assert!(
        (8..=60).contains(&null_ids),
        "{null_ids} rows without user id"
    );
}

#[test]
fn users_are_reattributed_later() {
    let (campaigns, _) = generate(&SimConfig::default());
    let mut seen: HashSet<String> = HashSet::new();
    let rows = campaigns.iter().flat_map(|c| c.rows().iter());
    let repeats = rows
        .filter_map(|r| r.user_id().map(|id| id.into_owned()))
        .filter(|id| !seen.insert(id.clone()))
        .count();
    assert!((100..=400).contains(&repeats), "{repeats} reattributions");
}
