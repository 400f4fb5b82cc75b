//! Every webhook event generated so far: its body, its drawn faults, the requests that carried
//! it and its outcome; and the counters and the pending count that tests wait on.

use super::config::WebhookConfig;
use super::listing::{listed, Attempt, EventFaults, Outcome, WebhookEvent};
use crate::hash::mix;
use crate::hash::roll;
use crate::stats::WebhookStats;
use axum::body::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How a request ended.
pub(crate) enum Answer {
    Status(u16),
    Failed(String),
}

/// One delivery to make: a copy of an event, for the target it was generated for.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) seq: usize,
    pub(crate) copy: u8,
    pub(crate) target: Arc<WebhookConfig>,
    pub(crate) body: Bytes,
}

/// What to send for an event: a job per copy, after its delay.
pub(crate) struct Plan {
    pub(crate) jobs: Vec<Job>,
    pub(crate) delay: Option<Duration>,
}

/// What a new event asks of the sender.
pub(crate) struct Pushed {
    /// Events to queue, in order.
    pub(crate) queue: Vec<usize>,
    /// The event just held back, and how long it may wait for a next one.
    pub(crate) held: Option<(usize, Duration)>,
}

impl Pushed {
    fn queue(queue: Vec<usize>) -> Pushed {
        Pushed { queue, held: None }
    }
}

struct Record {
    event: WebhookEvent,
    target: Arc<WebhookConfig>,
    body: Bytes,
    born: Instant,
    /// Deliveries not ended yet.
    open: u8,
    acknowledged: bool,
}

impl Record {
    fn new(
        seq: usize,
        body: Value,
        iid: Option<&str>,
        faults: EventFaults,
        target: WebhookConfig,
    ) -> Record {
        let open = if faults.doubled { 2 } else { 1 };
        Record {
            body: Bytes::from(serde_json::to_vec(&body).expect("JSON values serialize")),
            event: listed(seq, body, iid, faults),
            target: Arc::new(target),
            born: Instant::now(),
            open,
            acknowledged: false,
        }
    }
}

/// The events and their counters; lives in the state, behind its mutex.
pub(crate) struct Outbox {
    seed: u64,
    rng: ChaCha8Rng,
    records: Vec<Record>,
    /// The event waiting for a next one to go ahead of it.
    held: Option<usize>,
    /// The queue of the task that sends first requests; started on first use.
    pub(crate) worker: Option<mpsc::UnboundedSender<usize>>,
    pending: watch::Sender<usize>,
    stats: WebhookStats,
}

impl Outbox {
    pub(crate) fn new(seed: u64) -> Outbox {
        Outbox {
            seed,
            rng: rng(seed),
            records: Vec::new(),
            held: None,
            worker: None,
            pending: watch::Sender::new(0),
            stats: WebhookStats::default(),
        }
    }

    /// Starts the fault draws again, so a test that sets a target replays whatever came before.
    pub(crate) fn reseed(&mut self) {
        self.rng = rng(self.seed);
    }

    /// Records a new event, draws its faults and says what to queue.
    pub(crate) fn generate(
        &mut self,
        body: Value,
        iid: Option<&str>,
        target: WebhookConfig,
    ) -> Pushed {
        let seq = self.records.len();
        let (faults, reorder) = self.draw(&target);
        self.stats.events += 1;
        let (dropped, hold) = (faults.dropped, target.faults.reorder_hold);
        self.records
            .push(Record::new(seq, body, iid, faults, target));
        if dropped {
            self.records[seq].event.outcome = Outcome::Dropped;
            self.stats.dropped += 1;
            self.stats.lost += 1;
            return Pushed::queue(Vec::new());
        }
        self.pending.send_modify(|n| *n += 1);
        self.line_up(seq, reorder, hold)
    }

    /// Puts a sent event in line: ahead of the one held back, if any, else held back itself
    /// when it drew a reorder.
    fn line_up(&mut self, seq: usize, reorder: bool, hold: Duration) -> Pushed {
        if let Some(before) = self.held.take() {
            self.records[before].event.faults.reordered = true;
            self.stats.reordered += 1;
            return Pushed::queue(vec![seq, before]);
        }
        if reorder {
            self.held = Some(seq);
            let held = Some((seq, hold));
            return Pushed {
                queue: Vec::new(),
                held,
            };
        }
        Pushed::queue(vec![seq])
    }

    /// The faults of the next event, each drawn only when its rate is on.
    fn draw(&mut self, target: &WebhookConfig) -> (EventFaults, bool) {
        let f = &target.faults;
        let rng = &mut self.rng;
        let dropped = roll(rng, f.drop_rate);
        let doubled = roll(rng, f.double_rate);
        let delayed = roll(rng, f.delay_rate);
        let max = f.delay_max.as_millis() as u64;
        let delay_ms = delayed.then(|| rng.random_range(0..=max));
        let reorder = roll(rng, f.reorder_rate);
        // A dropped event is not sent at all; what else was drawn for it does not apply.
        let faults = EventFaults {
            dropped,
            doubled: doubled && !dropped,
            delay_ms: delay_ms.filter(|_| !dropped),
            reordered: false,
        };
        self.stats.doubled += u64::from(faults.doubled);
        self.stats.delayed += u64::from(faults.delay_ms.is_some());
        (faults, reorder && !dropped)
    }

    /// Lets the held event go (only if it is `seq`, when given): it had no next event.
    pub(crate) fn release(&mut self, seq: Option<usize>) -> Vec<usize> {
        match self.held {
            Some(h) if seq.is_none_or(|s| s == h) => {
                self.held = None;
                vec![h]
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn plan(&self, seq: usize) -> Option<Plan> {
        let r = self.records.get(seq)?;
        let job = |copy| Job {
            seq,
            copy,
            target: r.target.clone(),
            body: r.body.clone(),
        };
        let copies = if r.event.faults.doubled { 2 } else { 1 };
        let delay = r.event.faults.delay_ms.map(Duration::from_millis);
        Some(Plan {
            jobs: (0..copies).map(job).collect(),
            delay,
        })
    }

    /// Records how request `retry` of a job ended; the wait before the next retry, if any.
    pub(crate) fn record(
        &mut self,
        job: &Job,
        retry: u32,
        sent: Instant,
        answer: Answer,
    ) -> Option<Duration> {
        let r = &mut self.records[job.seq];
        let (status, error) = match answer {
            Answer::Status(s) if (200..300).contains(&s) => (Some(s), None),
            Answer::Status(s) => (Some(s), Some(format!("status {s}"))),
            Answer::Failed(why) => (None, Some(why)),
        };
        let ok = error.is_none();
        let after = sent.saturating_duration_since(r.born).as_millis() as u64;
        let attempt = Attempt {
            copy: job.copy,
            retry,
            sent_after_ms: after,
            status,
            error,
        };
        r.event.attempts.push(attempt);
        self.stats.sent += 1;
        self.stats.retried += u64::from(retry > 0);
        if ok {
            self.stats.acknowledged += 1;
        } else {
            self.stats.failed += 1;
            if let Some(wait) = r.target.retry_delays.get(retry as usize) {
                return Some(*wait);
            }
            self.stats.given_up += 1;
        }
        self.end_delivery(job.seq, ok);
        None
    }

    fn end_delivery(&mut self, seq: usize, ok: bool) {
        let r = &mut self.records[seq];
        r.acknowledged |= ok;
        r.open -= 1;
        if r.open > 0 {
            return;
        }
        r.event.outcome = if r.acknowledged {
            Outcome::Acknowledged
        } else {
            self.stats.lost += 1;
            Outcome::Lost
        };
        self.pending.send_modify(|n| *n -= 1);
    }

    pub(crate) fn events(&self) -> Vec<WebhookEvent> {
        self.records.iter().map(|r| r.event.clone()).collect()
    }

    pub(crate) fn stats(&self) -> WebhookStats {
        let pending = *self.pending.borrow() as u64;
        WebhookStats {
            pending,
            ..self.stats.clone()
        }
    }

    /// The number of events still on their way, to wait on.
    pub(crate) fn pending(&self) -> watch::Receiver<usize> {
        self.pending.subscribe()
    }
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed ^ 0x3EB_400C))
}
