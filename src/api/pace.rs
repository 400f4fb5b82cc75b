//! The one request rate every call shares, with the sync's own reads served first: look-ups
//! take only the slots no read is waiting for.

use std::sync::atomic::{AtomicUsize, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

pub struct Pace {
    limiter: DefaultDirectRateLimiter,
    /// Requests of the sync waiting for a slot; spare ones wait while any do.
    urgent: AtomicUsize,
    /// Told when no urgent request waits any more.
    idle: Notify,
}

impl Pace {
    pub fn new(quota: Quota) -> Self {
        Pace {
            limiter: RateLimiter::direct(quota),
            urgent: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Waits for the next slot, ahead of every spare request.
    pub async fn urgent(&self) {
        self.urgent.fetch_add(1, Ordering::SeqCst);
        // Given back however the wait ends, a cancelled request included.
        let _waiting = Waiting(self);
        self.limiter.until_ready().await;
    }

    /// Waits for a slot that no urgent request waits for. An urgent request that arrives while
    /// a spare one takes its slot waits one slot more, at most.
    pub async fn spare(&self) {
        loop {
            self.no_urgent_waiting().await;
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn no_urgent_waiting(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a wake-up in between is not lost.
            idle.as_mut().enable();
            if self.urgent.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One urgent request's place in the count.
struct Waiting<'a>(&'a Pace);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.0.urgent.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::sync::Arc;
    use std::time::Duration;

    fn pace(per_second: u32) -> Arc<Pace> {
        let quota = Quota::with_period(Duration::from_secs(1) / per_second)
            .unwrap()
            .allow_burst(NonZeroU32::MIN);
        Arc::new(Pace::new(quota))
    }

    /// While urgent requests keep a queue, spare ones get no slot; once the queue is gone,
    /// they get every slot.
    #[tokio::test]
    async fn spare_requests_take_only_the_slots_urgent_ones_leave() {
        let pace = pace(100);
        let spare_done = Arc::new(AtomicUsize::new(0));
        let spare = {
            let (pace, done) = (pace.clone(), spare_done.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    pace.spare().await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // Twenty urgent requests from four tasks, each always waiting: a queue throughout.
        let urgent: Vec<_> = (0..4)
            .map(|_| {
                let pace = pace.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        pace.urgent().await;
                    }
                })
            })
            .collect();
        for task in urgent {
            task.await.unwrap();
        }
        // At most the one slot taken before the first urgent request queued, and one per
        // race lost at a slot's edge.
        let during = spare_done.load(Ordering::SeqCst);
        assert!(
            during <= 2,
            "spare requests took {during} slots while reads queued"
        );
        spare.await.unwrap();
        assert_eq!(spare_done.load(Ordering::SeqCst), 10);
    }
}
