//! Where the pages of a range go while it is read, and how a page becomes rows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use crate::api::budget::Hold;
use crate::api::Page;
use crate::db;
use crate::db::writer;
use crate::db::Schema;
use crate::model::personal::{Door, Protection, Suppressed};
use crate::model::user::{Forgotten, Rejected, UserRow};
use crate::sync::scanner::Scanner;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Where the pages of a range go while it is read: the range's own transaction, or memory.
pub(super) trait PageSink {
    async fn take(&mut self, scanner: &Scanner<'_>, page: Page) -> Result<(), sqlx::Error>;
    /// Distinct rows taken so far, rejected ones included.
    fn distinct(&self) -> u64;
    /// Gives back what the rows held draw on the memory budget, before a pass that reads
    /// the range again: a task that waits on the budget must hold none of it.
    fn release(&mut self) {}
}

/// A range's own transaction, written page by page: memory holds one page, and a fingerprint
/// of each key the range has.
pub(super) struct TxSink<'t> {
    pub(super) tx: &'t mut sqlx::PgConnection,
    /// Fingerprints of the rows written, to count distinct rows against the server's total.
    pub(super) seen: HashSet<u64>,
    /// Fingerprints of the keys stored before this transaction began; rows with others are
    /// loaded by COPY. Two keys sharing one (about one chance in 10^11 for a range of 20,000
    /// rows) only send a new row through the upsert, or count one row short, which reads the
    /// range again: never a wrong write.
    pub(super) existing: HashSet<u64>,
    pub(super) rejected: HashSet<String>,
    pub(super) counts: writer::WriteCounts,
    /// When the campaign list was read, if the range's rows are to be counted: those attributed
    /// by then are in `counted`.
    pub(super) listed_at: Option<DateTime<Utc>>,
    pub(super) counted: u64,
}

impl PageSink for TxSink<'_> {
    async fn take(&mut self, scanner: &Scanner<'_>, mut page: Page) -> Result<(), sqlx::Error> {
        // Held until the page's rows are written.
        let _hold = std::mem::take(&mut page.hold);
        let (rows, rejected) = convert_page(scanner, page, Some(&mut *self.tx)).await?;
        // The map's keys serve the lookups, the writes' counts and the seen set: no copies.
        let (new, known): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(key, _)| {
            let key = fingerprint(key);
            !self.existing.contains(&key) && !self.seen.contains(&key)
        });
        let (new_keys, new): (Vec<_>, Vec<UserRow>) = new.into_iter().unzip();
        let (known_keys, known): (Vec<_>, Vec<UserRow>) = known.into_iter().unzip();
        let (rejected_keys, rejected): (Vec<String>, Vec<Rejected>) = rejected.into_iter().unzip();
        let upserted =
            writer::upsert_users(scanner.schema, self.tx, &known.iter().collect::<Vec<_>>())
                .await?;
        let copied =
            writer::copy_new_users(scanner.schema, self.tx, &new.iter().collect::<Vec<_>>())
                .await?;
        writer::insert_rejected(
            scanner.schema,
            self.tx,
            scanner.run_id,
            scanner.campaign,
            &rejected,
        )
        .await?;
        for c in upserted.values() {
            self.counts.inserted += c.inserted;
            self.counts.updated += c.updated;
        }
        self.counts.inserted += copied;
        for key in new_keys.iter().chain(&known_keys) {
            let first_sight = self.seen.insert(fingerprint(key));
            self.counted += u64::from(first_sight && self.listed_at.is_some_and(|t| key.0 <= t));
        }
        self.rejected.extend(rejected_keys);
        Ok(())
    }

    fn distinct(&self) -> u64 {
        (self.seen.len() + self.rejected.len()) as u64
    }
}

/// A key's fingerprint; 16 bytes in a set where the key takes about a hundred.
pub(super) fn fingerprint(key: &writer::Key) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A small range held in memory until the batch writer commits it; a later pass's copy of a
/// row replaces an earlier one.
#[derive(Default)]
pub(super) struct MemorySink {
    pub(super) rows: HashMap<writer::Key, UserRow>,
    pub(super) rejected: HashMap<String, Rejected>,
    /// What the rows draw on the memory budget, until their commit.
    pub(super) hold: Hold,
}

impl PageSink for MemorySink {
    async fn take(&mut self, scanner: &Scanner<'_>, mut page: Page) -> Result<(), sqlx::Error> {
        self.hold.merge(std::mem::take(&mut page.hold));
        let (rows, rejected) = convert_page(scanner, page, None).await?;
        self.rows.extend(rows);
        self.rejected.extend(rejected);
        Ok(())
    }

    fn distinct(&self) -> u64 {
        (self.rows.len() + self.rejected.len()) as u64
    }

    fn release(&mut self) {
        self.hold = Hold::default();
    }
}

/// A page's rows, each tried on `conn` (or a connection of the pool) first once Postgres
/// refused one of the campaign's.
async fn convert_page(
    scanner: &Scanner<'_>,
    page: Page,
    conn: Option<&mut sqlx::PgConnection>,
) -> Result<Converted, sqlx::Error> {
    let mut pooled = None;
    let mut conn = conn;
    let suppressed = if scanner.suppression.is_empty() {
        Suppressed::default()
    } else {
        // The list is asked about this page's people only; forget cannot add to it while the
        // run holds the lock, so nothing of theirs is written between the two.
        let conn = session(&mut conn, &mut pooled, scanner.pool).await?;
        let probes = Suppressed::probes(page.items.iter().map(|item| &**item));
        db::forget::suppressed_among(scanner.schema, conn, probes).await?
    };
    let (items, mut rejected) = at_the_door(scanner.personal, &suppressed, page);
    if !scanner.screen.load(Ordering::Relaxed) {
        let rows = convert(scanner.campaign, items, &mut rejected);
        return Ok((rows, rejected));
    }
    let conn = session(&mut conn, &mut pooled, scanner.pool).await?;
    let rows =
        convert_screened(scanner.schema, conn, scanner.campaign, items, &mut rejected).await?;
    Ok((rows, rejected))
}

/// The connection given, else one of the pool, taken once.
async fn session<'c>(
    given: &'c mut Option<&mut sqlx::PgConnection>,
    pooled: &'c mut Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    pool: &sqlx::PgPool,
) -> Result<&'c mut sqlx::PgConnection, sqlx::Error> {
    if let Some(conn) = given {
        return Ok(&mut **conn);
    }
    if pooled.is_none() {
        *pooled = Some(pool.acquire().await?);
    }
    Ok(&mut **pooled.as_mut().expect("set above"))
}

/// A page's rows by natural key, and the rows that could not be read, by content.
type Converted = (HashMap<writer::Key, UserRow>, HashMap<String, Rejected>);

/// A page's items once `--personal-data` rewrote them, before anything reads them; an item it
/// could not rewrite is set aside as a digest.
fn at_the_door<'p>(
    personal: &'p Protection,
    suppression: &'p Suppressed,
    page: Page,
) -> (Items<'p>, HashMap<String, Rejected>) {
    let mut items = Items {
        items: Vec::with_capacity(page.items.len()),
        originals: HashMap::new(),
        personal,
        suppression,
        recoded: page.recoded,
    };
    let mut rejected = HashMap::new();
    for item in page.items {
        match personal.apply(item) {
            Door::Pass(item) => items.items.push(item),
            Door::Rewritten { item, original } => {
                items.originals.insert(items.items.len(), original);
                items.items.push(item);
            }
            Door::Withheld(raw) => {
                let reason = "the item could not be read closely enough to apply \
                    --personal-data; it is kept as a digest only"
                    .to_owned();
                rejected.insert(raw.clone(), Rejected::new(reason, raw));
            }
        }
    }
    (items, rejected)
}

/// A page's items, as [`at_the_door`] let them in.
struct Items<'p> {
    items: Vec<Box<RawValue>>,
    /// The items as they came, by index, where the door rewrote them.
    originals: HashMap<usize, Box<RawValue>>,
    personal: &'p Protection,
    /// The people `forget` erased among the page's: their rows are dropped, only their place
    /// kept.
    suppression: &'p Suppressed,
    recoded: bool,
}

impl Items<'_> {
    /// The row of item `i`; a row keyed by the hash of its content gets the keyed form of the
    /// hash of the item as it came, so its key does not change with the mode.
    fn row(&self, campaign: &str, i: usize) -> Result<UserRow, Rejected> {
        let original = self.originals.get(&i).unwrap_or(&self.items[i]);
        let suppressed = self.suppression.matches(original);
        let mut row = match UserRow::from_item(campaign, &self.items[i], self.recoded) {
            Ok(row) => row,
            // Not even its text is kept.
            Err(_) if suppressed => {
                return Err(Rejected::forgotten(Forgotten {
                    attributed_at: None,
                    key_digest: hex::encode(Sha256::digest(original.get().as_bytes())),
                }))
            }
            Err(rejected) => return Err(rejected),
        };
        if let Some(digest) = row.row_key.strip_prefix("h:") {
            let digest = match self.originals.get(&i) {
                Some(original) => UserRow::content_digest(original),
                None => digest.to_owned(),
            };
            if let Some(key) = self.personal.content_key(&digest) {
                row.row_key = key;
            }
        }
        if suppressed {
            return Err(Rejected::forgotten(Forgotten {
                attributed_at: Some(row.attributed_at),
                key_digest: hex::encode(Sha256::digest(row.row_key.as_bytes())),
            }));
        }
        Ok(row)
    }
}

fn convert(
    campaign: &str,
    page: Items<'_>,
    rejected: &mut HashMap<String, Rejected>,
) -> HashMap<writer::Key, UserRow> {
    let mut rows = HashMap::with_capacity(page.items.len());
    for i in 0..page.items.len() {
        match page.row(campaign, i) {
            Ok(row) => {
                rows.insert((row.attributed_at, row.row_key.clone()), row);
            }
            Err(r) => {
                rejected.insert(r.key(), r);
            }
        }
    }
    rows
}

/// As [`convert`], with each row Postgres refuses (see [`writer::refused`]) set aside with its
/// reason and its text as received.
async fn convert_screened(
    schema: &Schema,
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    page: Items<'_>,
    rejected: &mut HashMap<String, Rejected>,
) -> Result<HashMap<writer::Key, UserRow>, sqlx::Error> {
    let mut read = Vec::with_capacity(page.items.len());
    for i in 0..page.items.len() {
        match page.row(campaign, i) {
            Ok(row) => read.push((row, &page.items[i])),
            Err(r) => {
                rejected.insert(r.key(), r);
            }
        }
    }
    let refused: HashMap<usize, String> = writer::refused(
        schema,
        conn,
        &read.iter().map(|(row, _)| row).collect::<Vec<_>>(),
    )
    .await?
    .into_iter()
    .collect();
    let mut rows = HashMap::with_capacity(read.len());
    for (i, (row, item)) in read.into_iter().enumerate() {
        match refused.get(&i) {
            Some(message) => {
                let raw = item.get().to_owned();
                let reason = format!("Postgres refused to store it: {message}");
                rejected.insert(raw.clone(), Rejected::new(reason, raw));
            }
            None => {
                rows.insert((row.attributed_at, row.row_key.clone()), row);
            }
        }
    }
    Ok(rows)
}
