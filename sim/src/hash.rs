//! Fixed hashes, so orders and seeded choices never depend on std's hasher or Rust version,
//! and the seeded draw every fault takes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeded hash of a string, built on [`mix`].
pub(crate) fn hash_str(seed: u64, s: &str) -> u64 {
    s.bytes().fold(mix(seed), |h, b| mix(h ^ u64::from(b)))
}

/// True with probability `p`; draws nothing when `p` is off, so turning one fault on or off
/// leaves the sequence of the others alone.
pub(crate) fn roll(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p.min(1.0))
}
