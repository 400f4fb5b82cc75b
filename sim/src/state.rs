//! The simulator's state, and the shared handle every request goes through.

use crate::bucket::TokenBucket;
use crate::config::SimConfig;
use crate::data::Campaign;
use crate::generate::generate;
use crate::hash::{hash_str, mix};
use crate::install::Install;
use crate::lookup::Lookup;
use crate::quota::Quota;
use crate::row::Row;
use crate::stats::SimStats;
use crate::webhook::outbox::Outbox;
use chrono::{DateTime, SubsecRound, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Everything the simulator knows; guarded by the mutex in [`Simulator`].
pub(crate) struct State {
    pub(crate) config: SimConfig,
    /// Live campaigns by display id; a deleted campaign is removed together with its rows.
    pub(crate) campaigns: BTreeMap<String, Campaign>,
    pub(crate) installs: HashMap<String, Install>,
    /// Latest attribution per user id and advertising id; rows change through
    /// [`State::insert_row`], [`State::remove_row`] and [`State::delete_campaign`] so it stays
    /// true.
    pub(crate) lookup: Lookup,
    pub(crate) clock: Option<DateTime<Utc>>,
    pub(crate) bucket: TokenBucket,
    /// End of the current 429 storm.
    pub(crate) storm_until: Option<std::time::Instant>,
    /// Rows churn took away, as they were served.
    pub(crate) removed: Vec<Value>,
    pub(crate) fault_rng: ChaCha8Rng,
    /// Draws generated display ids and processing ids, so those are reproducible too.
    pub(crate) id_rng: ChaCha8Rng,
    pub(crate) stats: SimStats,
    pub(crate) next_uid: u64,
    /// The Reporting API's limit; the simulator accepts one API key, so this is that key's.
    pub(crate) reporting_quota: Quota,
    /// Bumped to make the Reporting API's numbers of past days change, as late installs and
    /// spend imported from ad networks do.
    pub(crate) reporting_revision: u64,
    /// The webhook events generated, and what became of them.
    pub(crate) webhooks: Outbox,
}

impl State {
    /// Generates the data set from `config.seed`; the same config always gives the same data.
    pub(crate) fn new(config: SimConfig) -> State {
        let (campaigns, people) = generate(&config);
        let next_uid = (config.campaigns + config.users) as u64;
        State {
            campaigns: campaigns
                .into_iter()
                .map(|c| (c.display_id.clone(), c))
                .collect(),
            installs: HashMap::new(),
            lookup: Lookup::new(people),
            clock: None,
            bucket: TokenBucket::default(),
            storm_until: None,
            removed: Vec::new(),
            fault_rng: ChaCha8Rng::seed_from_u64(mix(config.seed ^ 0xFA17)),
            id_rng: ChaCha8Rng::seed_from_u64(mix(config.seed ^ 0x1D5)),
            stats: SimStats::default(),
            next_uid,
            reporting_quota: Quota::default(),
            reporting_revision: 0,
            webhooks: Outbox::new(config.seed),
            config,
        }
    }

    /// Simulated time, cut to milliseconds like every timestamp the API renders.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now).trunc_subsecs(3)
    }

    /// Live campaigns in listing order: a seeded hash of the display id, not by name or date.
    pub(crate) fn ordered(&self) -> Vec<&Campaign> {
        let seed = self.config.seed;
        let mut all: Vec<&Campaign> = self.campaigns.values().collect();
        all.sort_by_cached_key(|c| (hash_str(seed, &c.display_id), c.display_id.clone()));
        all
    }

    pub(crate) fn take_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    /// Adds a row to live campaign `id`.
    pub(crate) fn insert_row(&mut self, id: &str, row: Row) {
        if let Some(c) = self.campaigns.get_mut(id) {
            self.lookup.add_row(c, &row);
            c.insert_row(row);
        }
    }

    /// Takes out the row at `order` of campaign `id`.
    pub(crate) fn remove_row(&mut self, id: &str, order: u64) -> Option<Row> {
        let row = self.campaigns.get_mut(id)?.remove_row(order)?;
        self.lookup.forget_row(&row);
        Some(row)
    }

    /// Deletes campaign `id` with its rows.
    pub(crate) fn delete_campaign(&mut self, id: &str) -> Option<Campaign> {
        let gone = self.campaigns.remove(id)?;
        // Its rows and the installs it attributed fall out of the look-ups.
        self.lookup.invalidate();
        Some(gone)
    }

    /// The look-up index, built first if it is stale.
    pub(crate) fn lookup(&mut self) -> &Lookup {
        if !self.lookup.is_built() {
            self.lookup.build(&self.campaigns, &self.installs);
            self.stats.attribution_index_builds += 1;
        }
        &self.lookup
    }
}

/// The simulator; clones share one state.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<State>>,
}

impl Simulator {
    pub(crate) fn from_state(state: State) -> Simulator {
        Simulator {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Locks the state; a panicked holder cannot leave it half-written, so poison is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle that does not keep the state alive, for tasks the state itself points at.
    pub(crate) fn downgrade(&self) -> WeakSimulator {
        WeakSimulator(Arc::downgrade(&self.state))
    }
}

/// A [`Simulator`] that may be gone.
pub(crate) struct WeakSimulator(Weak<Mutex<State>>);

impl WeakSimulator {
    pub(crate) fn upgrade(&self) -> Option<Simulator> {
        let state = self.0.upgrade()?;
        Some(Simulator { state })
    }
}
