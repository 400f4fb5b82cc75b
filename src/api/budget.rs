//! One budget of bytes for the attributed-user rows a run holds: a page's body, its parsed rows,
//! the ranges waiting for their commit and their `COPY` data all draw on it, so the job's memory
//! stays bounded whatever shape the data has. Rows are counted in bytes, not pages: a page of
//! rows with rich `user_data` can weigh ten times one without.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes held for each byte of a page's body: the body itself, then its parsed rows and the
/// `COPY` data they become while they wait for their commit.
pub const PER_BODY_BYTE: usize = 2;

/// The budget; clones share it.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    free: Arc<Semaphore>,
    bytes: u32,
}

/// Bytes drawn from a budget, given back when dropped.
#[derive(Debug, Default)]
pub struct Hold(Option<OwnedSemaphorePermit>);

impl MemoryBudget {
    pub fn new(bytes: usize) -> MemoryBudget {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        MemoryBudget {
            free: Arc::new(Semaphore::new(bytes as usize)),
            bytes,
        }
    }

    /// Waits until `bytes` are free. A request for more than the whole budget waits for all of
    /// it, so a page larger than the budget is still read, alone.
    pub async fn take(&self, bytes: usize) -> Hold {
        let n = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.bytes);
        let permit = self.free.clone().acquire_many_owned(n).await;
        Hold(Some(
            permit.expect("the budget's semaphore is never closed"),
        ))
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.bytes as usize - self.free.available_permits()
    }
}

impl Hold {
    /// Gives back what this hold has beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.0 {
            let keep = bytes.max(1);
            if permit.num_permits() > keep {
                drop(permit.split(permit.num_permits() - keep));
            }
        }
    }

    /// Adds `other` to this hold.
    pub fn merge(&mut self, other: Hold) {
        match (&mut self.0, other.0) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn holds_wait_for_bytes_and_give_them_back_when_dropped() {
        let budget = MemoryBudget::new(1000);
        let mut a = budget.take(600).await;
        a.merge(budget.take(300).await);
        assert_eq!(budget.in_use(), 900);
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.take(200));
        assert!(waiting.await.is_err(), "200 bytes are not free");
        drop(a);
        assert_eq!(budget.in_use(), 0);
        // More than the whole budget waits for all of it, then goes alone.
        let mut big = budget.take(5000).await;
        assert_eq!(budget.in_use(), 1000);
        big.merge(Hold::default());
        big.shrink_to(300);
        assert_eq!(budget.in_use(), 300);
        drop(big);
        assert_eq!(budget.in_use(), 0);
    }
}
