//! Group commit of small ranges.
//!
//! A range whose rows fit in one page is read into memory by its campaign's task and handed to
//! a few writer tasks, which commit the ranges waiting at that moment together: one transaction,
//! one `COPY` and two state statements, instead of a handful of statements per campaign.
//! A range's rows and its checkpoint still commit in the same transaction, and a task waits for
//! its range to commit before reading the next one, so a campaign's checkpoint advances in order.
//! A campaign read to its end is marked verified the same way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api::budget::Hold;
use crate::db::Schema;
use crate::db::{self, state, writer, KeptSession};
use crate::model::user::{Rejected, UserRow};
use crate::model::window::Window;

/// Most rows one transaction carries.
const MAX_BATCH_ROWS: usize = 20_000;

/// One campaign's range, read completely.
pub struct RangeRows {
    pub campaign: String,
    pub range: Window,
    /// Where this run's gap-free reading of the campaign began.
    pub run_from: DateTime<Utc>,
    /// Each natural key once.
    pub rows: Vec<UserRow>,
    /// Each content once.
    pub rejected: Vec<Rejected>,
    pub requests: u64,
    pub received: u64,
    /// Nothing is expected to be stored in the range yet, so its rows go straight to `COPY`;
    /// should one be there after all, the batch is written again with a look-up.
    pub fresh: bool,
    /// Set on a campaign's last range of the run: its commit also marks the campaign read to
    /// the run's end and judges its counter.
    pub verified: Option<state::Verify>,
    /// What the rows draw on the run's memory budget; given back once they are committed.
    pub hold: Hold,
}

/// What a campaign task hands to the writers.
enum Work {
    Range(RangeRows),
    /// The campaign was read up to the run's end.
    Verified {
        campaign: String,
        verify: state::Verify,
    },
}

impl Work {
    fn range(&self) -> Option<&RangeRows> {
        match self {
            Work::Range(r) => Some(r),
            Work::Verified { .. } => None,
        }
    }

    fn rows(&self) -> usize {
        self.range().map_or(0, |r| r.rows.len())
    }
}

struct Job {
    work: Work,
    done: oneshot::Sender<sqlx::Result<writer::WriteCounts>>,
}

/// Where a batch is written: the run it belongs to and the schema it goes to.
#[derive(Clone)]
pub struct Target {
    pub run_id: Uuid,
    pub schema: Schema,
}

/// The handle campaign tasks submit ranges through.
#[derive(Clone)]
pub struct BatchWriter {
    jobs: mpsc::Sender<Job>,
}

impl BatchWriter {
    /// Starts `writers` writer tasks, which take their connections at once with `connect_now`
    /// and at their first batch otherwise; they end once every handle is dropped and the queue
    /// is empty.
    pub fn start(
        pool: PgPool,
        target: Target,
        writers: usize,
        connect_now: bool,
    ) -> (BatchWriter, JoinSet<()>) {
        let (jobs, queue) = mpsc::channel(256);
        let queue = Arc::new(Mutex::new(queue));
        let mut tasks = JoinSet::new();
        for _ in 0..writers.max(1) {
            tasks.spawn(serve(
                pool.clone(),
                target.clone(),
                queue.clone(),
                connect_now,
            ));
        }
        (BatchWriter { jobs }, tasks)
    }

    /// Commits the range with whatever else is waiting; returns what it did to the table.
    pub async fn write(&self, range: RangeRows) -> sqlx::Result<writer::WriteCounts> {
        self.submit(Work::Range(range)).await
    }

    /// Records that the campaign was read up to the run's end, and judges its counter.
    pub async fn verified(&self, campaign: &str, verify: state::Verify) -> sqlx::Result<()> {
        let campaign = campaign.to_owned();
        self.submit(Work::Verified { campaign, verify })
            .await
            .map(drop)
    }

    async fn submit(&self, work: Work) -> sqlx::Result<writer::WriteCounts> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { work, done })
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        result.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn serve(
    pool: PgPool,
    target: Target,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    connect_now: bool,
) {
    // A writer keeps its connection, so its batches go to one warm backend.
    let mut session = KeptSession::new(pool);
    if connect_now {
        session.connect().await;
    }
    while let Some(batch) = next_batch(&queue).await {
        commit(&mut session, &target, batch).await;
    }
}

/// The next job and those queued behind it, up to [`MAX_BATCH_ROWS`]; none once every sender
/// is gone.
async fn next_batch(queue: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut rows = first.work.rows();
    let mut batch = vec![first];
    while rows < MAX_BATCH_ROWS {
        let Ok(job) = queue.try_recv() else { break };
        rows += job.work.rows();
        batch.push(job);
    }
    Some(batch)
}

/// Commits a batch and answers each job.
async fn commit(session: &mut KeptSession, target: &Target, batch: Vec<Job>) {
    let works: Vec<&Work> = batch.iter().map(|j| &j.work).collect();
    match write_batch(session, target, &works).await {
        Ok(counts) => {
            for (job, counts) in batch.into_iter().zip(counts) {
                let _ = job.done.send(Ok(counts));
            }
        }
        // Each range reads its range again on transient trouble.
        Err(e) if db::is_transient(&e) || batch.len() == 1 => {
            let why = e.to_string();
            let mut error = Some(e);
            for job in batch {
                let e = error
                    .take()
                    .unwrap_or_else(|| sqlx::Error::Io(std::io::Error::other(why.clone())));
                let _ = job.done.send(Err(e));
            }
        }
        // One range's trouble must not fail the others: commit each on its own.
        Err(_) => {
            for job in batch {
                let result = write_batch(session, target, &[&job.work]).await;
                let _ = job.done.send(result.map(|mut c| c.remove(0)));
            }
        }
    }
}

/// Writes the work of different campaigns in one transaction; returns each one's counts. When
/// a range thought fresh held rows after all, the batch is written again with a look-up.
async fn write_batch(
    session: &mut KeptSession,
    target: &Target,
    works: &[&Work],
) -> sqlx::Result<Vec<writer::WriteCounts>> {
    let fresh = works.iter().all(|w| w.range().is_none_or(|r| r.fresh));
    session
        .run(
            async |conn| match write_once(conn, target, works, !fresh).await {
                Err(sqlx::Error::Database(e)) if fresh && e.code().as_deref() == Some("23505") => {
                    write_once(conn, target, works, true).await
                }
                other => other,
            },
        )
        .await
}

/// One attempt of `write_batch`; without `look_up`, every row is loaded as new.
async fn write_once(
    conn: &mut PgConnection,
    target: &Target,
    works: &[&Work],
    look_up: bool,
) -> sqlx::Result<Vec<writer::WriteCounts>> {
    let mut tx = conn.begin().await?;
    let ranges = || works.iter().filter_map(|w| w.range());
    let existing = if look_up {
        let bounds: Vec<_> = ranges()
            .map(|r| (r.campaign.as_str(), r.range.start, r.range.end))
            .collect();
        writer::existing_keys(&target.schema, &mut tx, &bounds).await?
    } else {
        HashMap::new()
    };
    let (new, known, mut counts) = partition(works, &existing);
    writer::copy_new_users(&target.schema, &mut tx, &new).await?;
    let upserted = writer::upsert_users(&target.schema, &mut tx, &known).await?;
    let index: HashMap<&str, usize> = works
        .iter()
        .enumerate()
        .filter_map(|(i, w)| Some((w.range()?.campaign.as_str(), i)))
        .collect();
    for (campaign, c) in upserted {
        if let Some(&i) = index.get(campaign.as_str()) {
            counts[i].inserted += c.inserted;
            counts[i].updated += c.updated;
        }
    }
    for range in ranges().filter(|r| !r.rejected.is_empty()) {
        writer::insert_rejected(
            &target.schema,
            &mut tx,
            target.run_id,
            &range.campaign,
            &range.rejected,
        )
        .await?;
    }
    record(&mut tx, target, works, &counts).await?;
    tx.commit().await?;
    Ok(counts)
}

/// The rows of `works`: those new to the warehouse (for `COPY`), those already stored (for the
/// upsert), and each range's count of new rows.
fn partition<'w>(
    works: &[&'w Work],
    existing: &HashMap<String, HashSet<writer::Key>>,
) -> (Vec<&'w UserRow>, Vec<&'w UserRow>, Vec<writer::WriteCounts>) {
    let mut new = Vec::new();
    let mut known = Vec::new();
    let mut counts = vec![writer::WriteCounts::default(); works.len()];
    for (range, counts) in works.iter().map(|w| w.range()).zip(&mut counts) {
        let Some(range) = range else { continue };
        // Most ranges of a backfill have nothing stored yet; only the others need a look-up.
        let stored = existing.get(&range.campaign);
        for row in &range.rows {
            if stored.is_some_and(|keys| keys.contains(&(row.attributed_at, row.row_key.clone()))) {
                known.push(row);
            } else {
                new.push(row);
                counts.inserted += 1;
            }
        }
    }
    (new, known, counts)
}

/// Records what `works` read and wrote in the ledger and the checkpoints, in `tx`.
async fn record(
    tx: &mut PgConnection,
    target: &Target,
    works: &[&Work],
    counts: &[writer::WriteCounts],
) -> sqlx::Result<()> {
    let scans: Vec<_> = works
        .iter()
        .zip(counts)
        .filter_map(|(w, c)| {
            let r = w.range()?;
            Some(state::ScanRecord {
                campaign: &r.campaign,
                range: r.range,
                run_from: r.run_from,
                requests: r.requests,
                rows_received: r.received,
                inserted: c.inserted,
                updated: c.updated,
            })
        })
        .collect();
    let verified: Vec<_> = works
        .iter()
        .filter_map(|w| match w {
            Work::Verified { campaign, verify } => Some((campaign.as_str(), *verify)),
            Work::Range(r) => r.verified.map(|v| (r.campaign.as_str(), v)),
        })
        .collect();
    state::record_scans(&target.schema, tx, target.run_id, &scans, &verified).await
}
