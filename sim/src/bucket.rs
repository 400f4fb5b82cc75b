//! The rate limit's token bucket.

use std::time::Instant;

/// One global token bucket: `rps` tokens a second, holding at most `max(1, rps)`.
#[derive(Default)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// Takes a token if one is there; the first call finds the bucket full.
    pub(crate) fn take(&mut self, rps: f64, now: Instant) -> bool {
        let capacity = rps.max(1.0);
        let refill = |l: Instant| self.tokens + now.duration_since(l).as_secs_f64() * rps;
        let tokens = self.last.map_or(capacity, refill).min(capacity);
        self.last = Some(now);
        let granted = tokens >= 1.0;
        self.tokens = if granted { tokens - 1.0 } else { tokens };
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_holds_one_second_and_refills() {
        let mut bucket = TokenBucket::default();
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| bucket.take(5.0, t0)).count(), 5);
        assert!(!bucket.take(5.0, t0 + Duration::from_millis(100)));
        assert!(bucket.take(5.0, t0 + Duration::from_millis(250)));
        assert_eq!(
            (0..9)
                .filter(|_| bucket.take(5.0, t0 + Duration::from_secs(10)))
                .count(),
            5
        );
    }

    #[test]
    fn slow_limits_still_allow_one_request() {
        let mut bucket = TokenBucket::default();
        let t0 = Instant::now();
        assert!(bucket.take(0.5, t0));
        assert!(!bucket.take(0.5, t0 + Duration::from_secs(1)));
        assert!(bucket.take(0.5, t0 + Duration::from_secs(2)));
    }
}
