//! The spool: deliveries answered 2xx while Postgres could not take them, appended to files on
//! local disk and fsync'd before the answer, then drained into Postgres in the order they came.
//!
//! A segment is a file of records, each its length (4 bytes), the first 8 bytes of its SHA-256
//! and its JSON. A record is acknowledged only after the fsync that follows its write, so a crash
//! can leave at most an unacknowledged, torn tail, which reading stops at. Segments are named by
//! a sequence and a random id, so a segment drained before a crash is known again by its name
//! (the database records how many of its records it stored) and a spool wiped and started over
//! never takes an old segment's name.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Item;

/// A segment takes appends until it holds this much; then the next one starts.
const SEGMENT_BYTES: u64 = 16 << 20;

const SUFFIX: &str = ".spool";

/// One spooled delivery: when it came, and what.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spooled {
    pub at: DateTime<Utc>,
    pub item: Item,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the spool is full ({0} bytes)")]
    Full(u64),
    #[error("the spool could not be written: {0}")]
    Io(#[from] io::Error),
}

/// A closed or open segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    path: PathBuf,
    bytes: u64,
}

struct Open {
    segment: Segment,
    file: File,
}

struct Inner {
    /// Closed segments, oldest first: the drain takes them in this order.
    closed: VecDeque<Segment>,
    current: Option<Open>,
    /// Bytes of every segment on disk.
    bytes: u64,
    next: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
}

impl Spool {
    /// Opens the spool in `dir`, made when missing; segments left by an earlier process are
    /// closed, to be drained first.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut closed = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(SUFFIX) || !entry.file_type()?.is_file() {
                continue;
            }
            closed.push(Segment {
                path: entry.path(),
                bytes: entry.metadata()?.len(),
                name,
            });
        }
        closed.sort_by(|a, b| a.name.cmp(&b.name));
        let next = closed.last().map_or(0, |s| sequence(&s.name) + 1);
        let bytes = closed.iter().map(|s| s.bytes).sum();
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            inner: Mutex::new(Inner {
                closed: closed.into(),
                current: None,
                bytes,
                next,
            }),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves nothing half-done that the next caller would trust:
        // every write is followed by its own checks.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.inner().bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Segments on disk, the open one included.
    pub fn segments(&self) -> usize {
        let inner = self.inner();
        inner.closed.len() + usize::from(inner.current.is_some())
    }

    /// Whether nothing waits to be drained.
    pub fn is_empty(&self) -> bool {
        self.inner().bytes == 0
    }

    /// Whether a delivery of `bytes` would still be taken.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.inner().bytes + bytes <= self.max_bytes
    }

    /// Appends `records` (see [`encode`]) and syncs them to disk: when this returns `Ok`, they
    /// survive a crash. Blocking: call it off the async threads.
    pub fn append(&self, records: &[u8]) -> Result<(), Refused> {
        let mut inner = self.inner();
        let len = records.len() as u64;
        if inner.bytes + len > self.max_bytes {
            return Err(Refused::Full(self.max_bytes));
        }
        if inner
            .current
            .as_ref()
            .is_none_or(|c| c.segment.bytes >= SEGMENT_BYTES)
        {
            self.start_segment(&mut inner)?;
        }
        let open = inner.current.as_mut().expect("a segment was just started");
        let written = open
            .file
            .write_all(records)
            .and_then(|()| open.file.sync_data());
        if let Err(e) = written {
            // Cut back what may have been written, so no later record follows a torn one;
            // failing that, the segment ends here and the next append starts another.
            let back = open.segment.bytes;
            if open
                .file
                .set_len(back)
                .and_then(|()| open.file.sync_data())
                .is_err()
            {
                let open = inner.current.take().expect("the segment is open");
                inner.closed.push_back(open.segment);
            }
            return Err(e.into());
        }
        open.segment.bytes += len;
        inner.bytes += len;
        Ok(())
    }

    fn start_segment(&self, inner: &mut Inner) -> io::Result<()> {
        if let Some(open) = inner.current.take() {
            inner.closed.push_back(open.segment);
        }
        let name = format!(
            "{:016x}-{}{SUFFIX}",
            inner.next,
            uuid::Uuid::new_v4().simple()
        );
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // The new name must be on disk before a record in it is acknowledged.
        File::open(&self.dir)?.sync_all()?;
        inner.next += 1;
        inner.current = Some(Open {
            segment: Segment {
                name,
                path,
                bytes: 0,
            },
            file,
        });
        Ok(())
    }

    /// The oldest segment holding records, to drain; the open one is closed for it when no
    /// other is left, and appends go on in a new one.
    pub fn oldest(&self) -> Option<Segment> {
        let mut inner = self.inner();
        if inner.closed.is_empty() {
            match inner.current.take() {
                Some(open) if open.segment.bytes > 0 => inner.closed.push_back(open.segment),
                other => inner.current = other,
            }
        }
        inner.closed.front().cloned()
    }

    /// Deletes a drained segment.
    pub fn remove(&self, segment: &Segment) -> io::Result<()> {
        fs::remove_file(&segment.path)?;
        let mut inner = self.inner();
        if let Some(i) = inner.closed.iter().position(|s| s == segment) {
            inner.closed.remove(i);
            inner.bytes -= segment.bytes;
        }
        Ok(())
    }
}

/// The records of a segment, in order, and the bytes of a torn tail it ended with.
pub fn read(segment: &Segment) -> io::Result<(Vec<Spooled>, u64)> {
    let data = fs::read(&segment.path)?;
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((record, next)) = record(&data, at) {
        records.push(record);
        at = next;
    }
    Ok((records, (data.len() - at) as u64))
}

/// The record at `at`, if a whole and intact one starts there.
fn record(data: &[u8], at: usize) -> Option<(Spooled, usize)> {
    let head = data.get(at..at + 12)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let body = data.get(at + 12..at + 12 + len)?;
    if Sha256::digest(body)[..8] != head[4..12] {
        return None;
    }
    let record = serde_json::from_slice(body).ok()?;
    Some((record, at + 12 + len))
}

/// Records as [`Spool::append`] takes them.
pub fn encode<'a>(deliveries: impl IntoIterator<Item = (DateTime<Utc>, &'a Item)>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        at: DateTime<Utc>,
        item: &'a Item,
    }
    let mut out = Vec::new();
    for (at, item) in deliveries {
        let body = serde_json::to_vec(&Out { at, item }).expect("a delivery serializes");
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&body)[..8]);
        out.extend_from_slice(&body);
    }
    out
}

/// The sequence a segment's name starts with.
fn sequence(name: &str) -> u64 {
    name.get(..16)
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::webhook::Unreadable;

    fn item(n: usize) -> Item {
        Item::Unreadable(
            Unreadable {
                reason: format!("reason {n}"),
                digest: format!("{n:064}"),
            },
            Some(vec![b'x'; n]),
        )
    }

    fn reasons(records: &[Spooled]) -> Vec<String> {
        records
            .iter()
            .map(|r| match &r.item {
                Item::Unreadable(why, _) => why.reason.clone(),
                Item::Event(e) => e.key.clone(),
            })
            .collect()
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_a_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let now = Utc::now();
        let items: Vec<Item> = (0..5).map(item).collect();
        spool
            .append(&encode(items[..2].iter().map(|i| (now, i))))
            .unwrap();
        let first = spool.oldest().unwrap();
        spool
            .append(&encode(items[2..].iter().map(|i| (now, i))))
            .unwrap();
        assert_eq!(spool.segments(), 2);
        let reopened = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(reopened.bytes(), spool.bytes());
        let a = reopened.oldest().unwrap();
        assert_eq!(a, first);
        let (records, torn) = read(&a).unwrap();
        assert_eq!(
            (reasons(&records), torn),
            (vec!["reason 0".into(), "reason 1".into()], 0)
        );
        reopened.remove(&a).unwrap();
        let b = reopened.oldest().unwrap();
        assert!(b.name > a.name, "{} after {}", b.name, a.name);
        let (records, _) = read(&b).unwrap();
        assert_eq!(reasons(&records), ["reason 2", "reason 3", "reason 4"]);
        reopened.remove(&b).unwrap();
        assert!(reopened.is_empty());
        assert!(reopened.oldest().is_none());
        // A new segment never takes an old one's name.
        reopened.append(&encode([(now, &items[0])])).unwrap();
        assert!(reopened.oldest().unwrap().name > b.name);
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let now = Utc::now();
        spool
            .append(&encode([(now, &item(1)), (now, &item(2))]))
            .unwrap();
        let segment = spool.oldest().unwrap();
        let whole = fs::read(&segment.path).unwrap();
        // Half a record more, as a crash mid-write leaves it.
        let mut torn = whole.clone();
        torn.extend_from_slice(&encode([(now, &item(3))])[..20]);
        fs::write(&segment.path, &torn).unwrap();
        let (records, tail) = read(&segment).unwrap();
        assert_eq!((records.len(), tail), (2, 20));
        // A flipped byte in the last record: it is not taken.
        let mut corrupt = whole.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        fs::write(&segment.path, &corrupt).unwrap();
        let (records, _) = read(&segment).unwrap();
        assert_eq!(reasons(&records), ["reason 1"]);
    }

    #[test]
    fn a_full_spool_refuses_and_takes_again_once_drained() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let one = encode([(now, &item(100))]);
        let spool = Spool::open(dir.path(), 2 * one.len() as u64).unwrap();
        spool.append(&one).unwrap();
        spool.append(&one).unwrap();
        assert!(!spool.has_room(1));
        assert!(matches!(spool.append(&one), Err(Refused::Full(_))));
        let segment = spool.oldest().unwrap();
        assert_eq!(
            read(&segment).unwrap().0.len(),
            2,
            "the refusal wrote nothing"
        );
        spool.remove(&segment).unwrap();
        spool.append(&one).unwrap();
    }
}
