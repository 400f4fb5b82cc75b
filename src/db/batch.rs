//! Group commit of small ranges.
//!
//! A range whose rows fit in one page is read into memory by its campaign's task and handed to
//! a few writer tasks, which commit the ranges waiting at that moment together: one transaction,
//! one `COPY`, one statement per state table, instead of a handful of statements per campaign.
//! A range's rows and its checkpoint still commit in the same transaction, and a task waits for
//! its range to commit before reading the next one, so a campaign's checkpoint advances in order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Acquire, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::db::rows::{Rejected, UserRow};
use crate::db::{self, state, writer};
use crate::sync::windows::Window;

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
}

struct Job {
    range: RangeRows,
    done: oneshot::Sender<sqlx::Result<writer::WriteCounts>>,
}

/// The handle campaign tasks submit ranges through.
#[derive(Clone)]
pub struct BatchWriter {
    jobs: mpsc::Sender<Job>,
}

impl BatchWriter {
    /// Starts `writers` writer tasks; they end once every handle is dropped and the queue is
    /// empty.
    pub fn start(pool: PgPool, run_id: Uuid, writers: usize) -> (BatchWriter, JoinSet<()>) {
        let (jobs, queue) = mpsc::channel(256);
        let queue = Arc::new(Mutex::new(queue));
        let mut tasks = JoinSet::new();
        for _ in 0..writers.max(1) {
            tasks.spawn(serve(pool.clone(), run_id, queue.clone()));
        }
        (BatchWriter { jobs }, tasks)
    }

    /// Commits the range with whatever else is waiting; returns what it did to the table.
    pub async fn write(&self, range: RangeRows) -> sqlx::Result<writer::WriteCounts> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { range, done })
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        result.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }
}

async fn serve(pool: PgPool, run_id: Uuid, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    // A writer keeps its connection, so its batches go to one warm backend; after an error
    // it takes a fresh one.
    let mut conn: Option<PoolConnection<Postgres>> = None;
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut rows = first.range.rows.len();
            let mut batch = vec![first];
            while rows < MAX_BATCH_ROWS {
                let Ok(job) = queue.try_recv() else { break };
                rows += job.range.rows.len();
                batch.push(job);
            }
            batch
        };
        let ranges: Vec<&RangeRows> = batch.iter().map(|j| &j.range).collect();
        let result = write_batch(&pool, &mut conn, run_id, &ranges).await;
        if result.is_err() {
            conn = None;
        }
        match result {
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
                    let result = write_batch(&pool, &mut conn, run_id, &[&job.range]).await;
                    if result.is_err() {
                        conn = None;
                    }
                    let _ = job.done.send(result.map(|mut c| c.remove(0)));
                }
            }
        }
    }
}

/// Writes ranges of different campaigns in one transaction; returns each range's counts.
async fn write_batch(
    pool: &PgPool,
    conn: &mut Option<PoolConnection<Postgres>>,
    run_id: Uuid,
    ranges: &[&RangeRows],
) -> sqlx::Result<Vec<writer::WriteCounts>> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(pool.acquire().await?),
    };
    let mut tx = conn.begin().await?;
    let bounds: Vec<_> = ranges
        .iter()
        .map(|r| (r.campaign.as_str(), r.range.start, r.range.end))
        .collect();
    let existing = writer::existing_keys_in(&mut tx, &bounds).await?;
    let mut new = Vec::new();
    let mut known = Vec::new();
    let mut counts = vec![writer::WriteCounts::default(); ranges.len()];
    // Most ranges of a backfill have nothing stored yet; only the others need a look-up.
    let with_rows: HashSet<&str> = existing.iter().map(|k| k.0.as_str()).collect();
    for (range, counts) in ranges.iter().zip(&mut counts) {
        let look = with_rows.contains(range.campaign.as_str());
        for row in &range.rows {
            let key = || {
                let campaign = row.campaign_display_id.clone();
                (campaign, row.attributed_at, row.row_key.clone())
            };
            if look && existing.contains(&key()) {
                known.push(row);
            } else {
                new.push(row);
                counts.inserted += 1;
            }
        }
    }
    writer::copy_new_users(&mut tx, &new).await?;
    let upserted = writer::upsert_users(&mut tx, &known).await?;
    let index: HashMap<&str, usize> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| (r.campaign.as_str(), i))
        .collect();
    for (campaign, c) in upserted {
        if let Some(&i) = index.get(campaign.as_str()) {
            counts[i].inserted += c.inserted;
            counts[i].updated += c.updated;
        }
    }
    for range in ranges.iter().filter(|r| !r.rejected.is_empty()) {
        writer::insert_rejected(&mut tx, run_id, &range.campaign, &range.rejected).await?;
    }
    let scans: Vec<_> = ranges
        .iter()
        .zip(&counts)
        .map(|(r, c)| state::ScanRecord {
            campaign: &r.campaign,
            range: r.range,
            run_from: r.run_from,
            requests: r.requests,
            rows_received: r.received,
            inserted: c.inserted,
            updated: c.updated,
        })
        .collect();
    state::record_scans(&mut tx, run_id, &scans).await?;
    tx.commit().await?;
    Ok(counts)
}
