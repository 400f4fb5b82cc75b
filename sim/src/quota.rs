//! The Reporting API's request quota: a sliding window, so whether a request gets through
//! depends only on when the requests before it were let through, never on a random draw.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The times of the requests let through within the last window.
#[derive(Default)]
pub(crate) struct Quota {
    admitted: VecDeque<Instant>,
}

impl Quota {
    /// Lets a request through at `now` if fewer than `requests` were let through in the
    /// `window` before it; a refused request does not count.
    pub(crate) fn take(&mut self, requests: u32, window: Duration, now: Instant) -> bool {
        while let Some(&first) = self.admitted.front() {
            if now.saturating_duration_since(first) < window {
                break;
            }
            self.admitted.pop_front();
        }
        let granted = self.admitted.len() < requests as usize;
        if granted {
            self.admitted.push_back(now);
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_a_minute_refuses_the_second_until_the_minute_is_over() {
        let (mut quota, t0, s) = (Quota::default(), Instant::now(), Duration::from_secs);
        let minute = s(60);
        assert!(quota.take(1, minute, t0));
        assert!(!quota.take(1, minute, t0 + s(1)));
        assert!(!quota.take(1, minute, t0 + s(59)));
        assert!(quota.take(1, minute, t0 + minute));
        assert!(!quota.take(1, minute, t0 + s(61)));
    }

    #[test]
    fn the_window_slides_over_the_requests_let_through() {
        let (mut quota, t0, ms) = (Quota::default(), Instant::now(), Duration::from_millis);
        let second = ms(1000);
        let at = |n: u64| t0 + ms(n);
        let passed: Vec<bool> = [0, 100, 200, 900, 1000, 1050, 1100, 1150]
            .map(|n| quota.take(3, second, at(n)))
            .to_vec();
        let expected = [true, true, true, false, true, false, true, false];
        assert_eq!(passed, expected);
        assert!(!Quota::default().take(0, second, t0));
    }
}
