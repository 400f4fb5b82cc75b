//! A stream's deadline within a run (the look-ups', reporting's): once it passes, every request
//! and wait of the stream ends, and a `Retry-After` that would outlast it is not waited out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Cheap to clone; every clone is the same deadline.
#[derive(Clone, Debug)]
pub struct Deadline {
    /// How long the stream may go on once its deadline is started.
    span: Duration,
    /// When it ends; None until [`Deadline::start`].
    at: Arc<Mutex<Option<Instant>>>,
    /// Cancelled when the deadline passes, or when the run is stopped (a child of its token).
    cut: CancellationToken,
}

impl Deadline {
    /// A deadline `span` long once started, cut with `parent` too.
    pub fn new(span: Duration, parent: &CancellationToken) -> Self {
        Deadline {
            span,
            at: Arc::default(),
            cut: parent.child_token(),
        }
    }

    /// Starts the clock, once; later calls change nothing.
    pub fn start(&self) {
        let at = {
            let mut at = self.at.lock().expect("not poisoned");
            if at.is_some() {
                return;
            }
            *at.insert(Instant::now() + self.span)
        };
        let cut = self.cut.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(at) => cut.cancel(),
                () = cut.cancelled() => {}
            }
        });
    }

    /// The time left: all of it while not started.
    pub fn left(&self) -> Duration {
        match *self.at.lock().expect("not poisoned") {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.span,
        }
    }

    pub fn span(&self) -> Duration {
        self.span
    }

    /// Cancelled once the deadline passes or the run is stopped.
    pub fn token(&self) -> &CancellationToken {
        &self.cut
    }

    /// Whether a wait of `wait` from now would end after the deadline.
    pub fn outlasted_by(&self, wait: Duration) -> bool {
        wait > self.left()
    }

    /// Ends the stream now, as if the deadline had passed.
    pub fn end(&self) {
        self.cut.cancel();
    }
}

/// The wall-clock instant `wait` from now, to tell an operator when to try again.
pub fn wall_clock_after(wait: Duration) -> DateTime<Utc> {
    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(366));
    Utc::now() + wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_cuts_only_once_started_and_its_span_has_passed() {
        let parent = CancellationToken::new();
        let deadline = Deadline::new(Duration::from_millis(50), &parent);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!deadline.token().is_cancelled(), "not started, not cut");
        assert_eq!(deadline.left(), Duration::from_millis(50));
        let started = Instant::now();
        deadline.start();
        assert!(deadline.outlasted_by(Duration::from_secs(1)));
        deadline.token().cancelled().await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(deadline.left(), Duration::ZERO);
        assert!(!parent.is_cancelled(), "the run goes on");
    }

    #[tokio::test]
    async fn a_stopped_run_cuts_its_deadlines() {
        let parent = CancellationToken::new();
        let deadline = Deadline::new(Duration::from_secs(3600), &parent);
        parent.cancel();
        assert!(deadline.token().is_cancelled());
    }
}
