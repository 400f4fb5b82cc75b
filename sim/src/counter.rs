//! The campaign list's `attributed_users` counter, and the ways the real one lies (the contract's
//! ambiguity 12: it can lag the endpoint, read 0, or disagree with the rows).

use crate::hash::mix;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How a campaign's counter relates to its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Counter {
    /// The number of rows.
    #[default]
    Honest,
    /// Always 0.
    Zero,
    /// Stuck at `value`, below the rows the campaign had when it froze.
    Frozen { value: u64 },
    /// Also counts installs that never signed up: `extra` above the rows.
    Above { extra: u64 },
    /// Counts a row only `seconds` after it arrived, then catches up.
    Lag { seconds: u64 },
}

const SALT: u64 = 0xC0_0A7E;

impl Counter {
    /// The seeded counter of a generated campaign with `rows` rows: a lie for about `rate` of
    /// campaigns, spread evenly over the four kinds.
    pub(crate) fn seeded(seed: u64, uid: u64, rows: usize, rate: f64) -> Counter {
        let h = mix(mix(seed ^ SALT) ^ uid);
        let fraction = (h >> 11) as f64 / (1u64 << 53) as f64;
        if fraction >= rate {
            return Counter::Honest;
        }
        let h = mix(h);
        match h % 4 {
            0 => Counter::Zero,
            1 => Counter::Frozen {
                value: rows as u64 / 2,
            },
            2 => Counter::Above {
                extra: 1 + (h >> 8) % 20,
            },
            _ => Counter::Lag {
                seconds: 60 * (2 + (h >> 8) % 9),
            },
        }
    }

    /// The counter of `rows` rows, of which `arrivals` (when each row added after the data set
    /// was generated arrived) feed a lag.
    pub(crate) fn value(&self, rows: usize, arrivals: &[Instant]) -> u64 {
        let rows = rows as u64;
        match *self {
            Counter::Honest => rows,
            Counter::Zero => 0,
            Counter::Frozen { value } => value,
            Counter::Above { extra } => rows + extra,
            Counter::Lag { seconds } => {
                let lag = Duration::from_secs(seconds);
                let recent = arrivals.iter().filter(|a| a.elapsed() < lag).count();
                rows.saturating_sub(recent as u64)
            }
        }
    }

    /// Whether this counter ever disagrees with the rows.
    pub fn lies(&self) -> bool {
        *self != Counter::Honest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_the_rate_of_campaigns_lie_in_every_way() {
        let counters: Vec<Counter> = (0..4000)
            .map(|uid| Counter::seeded(7, uid, 10, 0.2))
            .collect();
        let lying = counters.iter().filter(|c| c.lies()).count();
        assert!((700..900).contains(&lying), "{lying} of 4000 lie");
        for kind in ["zero", "frozen", "above", "lag"] {
            let n = counters
                .iter()
                .filter(|c| serde_json::to_value(c).unwrap()["kind"] == kind)
                .count();
            assert!(n > 150, "{n} {kind}");
        }
        assert!((0..100).all(|uid| !Counter::seeded(7, uid, 10, 0.0).lies()));
    }

    #[test]
    fn each_kind_reads_as_it_lies() {
        let now = Instant::now();
        let arrivals = [now, now - Duration::from_secs(600)];
        assert_eq!(Counter::Honest.value(12, &arrivals), 12);
        assert_eq!(Counter::Zero.value(12, &arrivals), 0);
        assert_eq!(Counter::Frozen { value: 5 }.value(12, &arrivals), 5);
        assert_eq!(Counter::Above { extra: 3 }.value(12, &arrivals), 15);
        // The row that arrived now is not counted yet; the one ten minutes ago is.
        assert_eq!(Counter::Lag { seconds: 120 }.value(12, &arrivals), 11);
    }
}
