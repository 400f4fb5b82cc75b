//! The synthetic data set: campaigns and rows drawn from a seeded ChaCha8 generator, shaped to
//! hit the awkward cases of the real API (skewed sizes, midnights and DST edges, null ids, "").
//!
//! Every draw comes from one generator in a fixed order, so the same config always gives the
//! same data: reordering draws, even between helpers, changes the data set.

mod campaigns;
mod draw;
mod instants;
mod rows;
mod users;

#[cfg(test)]
mod tests;

use crate::config::SimConfig;
use crate::counter::Counter;
use crate::data::Campaign;
use campaigns::{campaign, unique_display_id};
use instants::tricky_instants;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rows::RowMaker;
use std::collections::HashSet;

pub(crate) use draw::{object, random_id};
pub(crate) use rows::{draw_ad_fields, draw_fields, fresh_row, People};
pub(crate) use users::{draw_user, drawn_user_id, user_of_ad_id, user_of_id};

/// Builds the whole data set; the same config always gives the same campaigns and rows.
pub(crate) fn generate(cfg: &SimConfig) -> (Vec<Campaign>, People) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut campaigns = all_campaigns(&mut rng, cfg);
    let tricky = tricky_instants(cfg.start, cfg.end);
    let targets = if cfg.even {
        (0..cfg.users).map(|n| n % campaigns.len().max(1)).collect()
    } else {
        row_targets(&mut rng, campaigns.len(), cfg.users)
    };
    let maker = RowMaker::new(cfg, tricky, campaigns.len());
    let (rows, people) = maker.make(&mut rng, &campaigns, targets);
    for (c, rows) in campaigns.iter_mut().zip(rows) {
        c.counter = Counter::seeded(cfg.seed, c.uid, rows.len(), cfg.counter_lie_rate);
        c.set_rows(rows);
    }
    (campaigns, people)
}

/// The campaigns, with unique display ids; one of them is the default link.
fn all_campaigns(rng: &mut ChaCha8Rng, cfg: &SimConfig) -> Vec<Campaign> {
    let mut ids = HashSet::new();
    let mut campaigns: Vec<Campaign> = (0..cfg.campaigns)
        .map(|i| {
            let id = unique_display_id(rng, &mut ids);
            campaign(rng, cfg, i, id)
        })
        .collect();
    if !campaigns.is_empty() {
        let i = rng.random_range(0..campaigns.len());
        campaigns[i].default_link = true;
    }
    campaigns
}

/// Campaign index of every row: one campaign takes ~30%, two (of four or more) none, the rest
/// a random weight each.
fn row_targets(rng: &mut ChaCha8Rng, n: usize, users: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let big = rng.random_range(0..n);
    let mut weights: Vec<u32> = (0..n).map(|_| rng.random_range(1..=20)).collect();
    weights[big] = 0;
    if n >= 4 {
        weights[(big + 1) % n] = 0;
        weights[(big + 2) % n] = 0;
    }
    let total: u32 = weights.iter().sum();
    let big_rows = if total == 0 { users } else { users * 3 / 10 };
    let mut out = vec![big; big_rows];
    for _ in big_rows..users {
        let mut x = rng.random_range(0..total);
        let pick = weights.iter().position(|&w| {
            if x < w {
                return true;
            }
            x -= w;
            false
        });
        out.push(pick.unwrap_or(big));
    }
    out
}
