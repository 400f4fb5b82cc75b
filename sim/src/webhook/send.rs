//! Pushing the events: one background task sends first requests in the order the events were
//! queued, each answered (or timed out) before the next, so a receiver sees them in that
//! order unless a fault says otherwise; delayed events and retries go on in tasks of their
//! own, so they never hold up the line. Nothing here runs under an SDK call's answer.

use super::outbox::{Answer, Job};
use crate::state::{Simulator, State, WeakSimulator};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Records a new event, if a target is set, and queues what it lets go.
pub(crate) fn push(sim: &Simulator, st: &mut State, body: Value, iid: Option<&str>) {
    let Some(target) = st.config.webhook.clone() else {
        return;
    };
    let pushed = st.webhooks.generate(body, iid, target);
    queue(sim, st, pushed.queue);
    if let Some((seq, hold)) = pushed.held {
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let mut st = sim.lock();
            let free = st.webhooks.release(Some(seq));
            queue(&sim, &mut st, free);
        });
    }
}

/// Hands events to the sending task, starting one when there is none (or its runtime ended).
pub(crate) fn queue(sim: &Simulator, st: &mut State, seqs: Vec<usize>) {
    for seq in seqs {
        let sent = st.webhooks.worker.as_ref().map(|w| w.send(seq));
        if !matches!(sent, Some(Ok(()))) {
            let (worker, jobs) = mpsc::unbounded_channel();
            tokio::spawn(dispatch(sim.downgrade(), jobs));
            worker.send(seq).expect("the receiver was just made");
            st.webhooks.worker = Some(worker);
        }
    }
}

/// The sending task; it holds the simulator only weakly, so it ends with it.
async fn dispatch(sim: WeakSimulator, mut jobs: mpsc::UnboundedReceiver<usize>) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client without TLS or proxies builds");
    while let Some(seq) = jobs.recv().await {
        let Some(sim) = sim.upgrade() else { return };
        let Some(plan) = sim.lock().webhooks.plan(seq) else {
            continue;
        };
        match plan.delay {
            Some(delay) => {
                let (sim, http) = (sim.clone(), http.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    for job in plan.jobs {
                        first(&sim, &http, job).await;
                    }
                });
            }
            None => {
                for job in plan.jobs {
                    first(&sim, &http, job).await;
                }
            }
        }
    }
}

/// The first request of a job; its retries, if it fails, in a task of their own.
async fn first(sim: &Simulator, http: &reqwest::Client, job: Job) {
    if let Some(wait) = attempt(sim, http, &job, 0).await {
        tokio::spawn(retry(sim.clone(), http.clone(), job, wait));
    }
}

async fn retry(sim: Simulator, http: reqwest::Client, job: Job, mut wait: Duration) {
    for n in 1.. {
        tokio::time::sleep(wait).await;
        match attempt(&sim, &http, &job, n).await {
            Some(next) => wait = next,
            None => return,
        }
    }
}

/// Sends request `retry` of a job and records it; the wait before the next retry, if any.
async fn attempt(
    sim: &Simulator,
    http: &reqwest::Client,
    job: &Job,
    retry: u32,
) -> Option<Duration> {
    let sent = Instant::now();
    let answer = post(http, job).await;
    sim.lock().webhooks.record(job, retry, sent, answer)
}

/// One POST as Linkrunner sends it: JSON and the key, nothing else.
async fn post(http: &reqwest::Client, job: &Job) -> Answer {
    let request = http
        .post(&job.target.url)
        .header(CONTENT_TYPE, "application/json")
        .header("linkrunner-key", &job.target.key)
        .timeout(job.target.timeout)
        .body(job.body.clone());
    match request.send().await {
        Ok(answer) => Answer::Status(answer.status().as_u16()),
        Err(e) if e.is_timeout() => Answer::Failed("timeout".into()),
        Err(e) if e.is_connect() => Answer::Failed(format!("connect: {}", cause(&e))),
        Err(e) => Answer::Failed(cause(&e)),
    }
}

/// The innermost cause, which says what went wrong (reqwest's own text names only the URL).
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}
