//! openraft's log storage for one group, on the node's shared RocksDB.
//!
//! Invariants:
//! - entries of group `g` live under `log_key(g, index)` in `raft_log`, so
//!   they are contiguous, ordered, and purged with one `delete_range`; an
//!   entry is stored in the current format (postcard; its proposal's bytes
//!   as they are) and read in either (format 1, the JSON of older versions, still opens: `format1`);
//! - every write to the log goes through the shared [`Syncer`], which makes
//!   writes in the order they were handed over: `append` hands its batch
//!   over and acknowledges the entries (`IOFlushed`) only after the syncer
//!   has written them and synced the WAL — one fsync for every group's
//!   appends in flight; until then the entries are readable from the cache,
//!   and a read the cache cannot answer first waits for the syncer (so it
//!   never misses a write still queued);
//! - the vote and truncations are durable before their call returns; the
//!   committed log id is written lazily, with the next append (see
//!   `save_committed`);
//! - the last purged log id is written in the same batch as the purge;
//! - a per-group cache holds a contiguous suffix of the log (`TailCache`),
//!   kept equal to what is on disk once the syncer has made the writes
//!   handed to it (`append`, `truncate_after` and `purge` update both), so
//!   replication and apply, which read what was just appended, rarely open
//!   a RocksDB iterator.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::format1::decode_entry;
use super::tail_cache::TailCache;
use crate::codec::{decode, encode};
use crate::raft::types::{Entry, LogId, TypeConfig, Vote};
use crate::routing::GroupId;
use crate::storage::db::{CF_LOG, CF_META};
use crate::storage::keys::{log_key, meta_key, parse_log_key, MetaTag};
use crate::storage::syncer::Syncer;
use crate::storage::Db;

/// The log of one group. Cheap to clone; clones share the database and
/// the cache.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    syncer: Syncer,
    group: GroupId,
    cache: Arc<Mutex<TailCache>>,
    /// The last committed log id openraft reported, not yet written. It is
    /// written with the next append (or by `flush_committed`), not on every
    /// commit: one RocksDB write less per entry on every node.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    pub fn new(db: Db, syncer: Syncer, group: GroupId) -> Self {
        Self { db, syncer, group, cache: Arc::default(), committed: Arc::default() }
    }

    /// Writes the committed log id openraft last reported, if not yet
    /// written (on shutdown, so a clean restart re-applies everything).
    /// It goes through the syncer, after the appends queued there: a
    /// committed index must never reach the disk ahead of its entries.
    pub async fn flush_committed(&self) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        if self.take_committed(&mut batch)? {
            self.syncer.write_durable(batch).await?;
        }
        Ok(())
    }

    /// Moves an unwritten committed log id into `batch`; true if it did.
    fn take_committed(&self, batch: &mut WriteBatch) -> io::Result<bool> {
        let pending = self.committed.lock().unwrap_or_else(|p| p.into_inner()).take();
        match pending {
            Some(committed) => self.put_meta(batch, MetaTag::Committed, &committed).map(|()| true),
            None => Ok(false),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TailCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entries `start..end` if the cache holds all that exist of them.
    fn cached(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        self.cache().range(start, end)
    }

    /// The membership log id at which a leader removed this node from the
    /// group (`raft::cluster`), if one did.
    pub fn departed(&self) -> io::Result<Option<Option<LogId>>> {
        self.get_meta(MetaTag::Departed)
    }

    /// Records (durably) that a leader removed this node at membership `at`.
    pub fn set_departed(&self, at: &Option<LogId>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, MetaTag::Departed, at)?;
        self.db.write(batch).map_err(io_err)
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, tag: MetaTag) -> io::Result<Option<T>> {
        let cf = self.db.cf(CF_META).map_err(io_err)?;
        let raw = self.db.raw().get_cf(cf, meta_key(self.group, tag)).map_err(io_err)?;
        raw.map(|bytes| decode(&bytes)).transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, batch: &mut WriteBatch, tag: MetaTag, value: &T) -> io::Result<()> {
        let cf = self.db.cf(CF_META).map_err(io_err)?;
        batch.put_cf(cf, meta_key(self.group, tag), encode(value));
        Ok(())
    }

    fn last_entry(&self) -> io::Result<Option<Entry>> {
        let cf = self.db.cf(CF_LOG).map_err(io_err)?;
        let end = log_key(self.group, u64::MAX);
        let mut iter = self.db.raw().iterator_cf(cf, IteratorMode::From(&end, Direction::Reverse));
        match iter.next() {
            Some(Ok((key, value))) if parse_log_key(&key).is_some_and(|(g, _)| g == self.group) => {
                decode_entry(&value).map(Some)
            }
            Some(Err(e)) => Err(io_err(e)),
            _ => Ok(None),
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let (start, end) = bounds(&range);
        if let Some(entries) = self.cached(start, end) {
            return Ok(entries);
        }
        // Appends still queued in the syncer are not in RocksDB yet.
        self.syncer.sync().await?;
        let cf = self.db.cf(CF_LOG).map_err(io_err)?;
        let from = log_key(self.group, start);
        let mut entries = Vec::new();
        for item in self.db.raw().iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            match parse_log_key(&key) {
                Some((g, index)) if g == self.group && index < end => entries.push(decode_entry(&value)?),
                _ => break,
            }
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.get_meta(MetaTag::Vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        self.syncer.sync().await?;
        let last_purged_log_id: Option<LogId> = self.get_meta(MetaTag::LastPurged)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, MetaTag::Vote, vote)?;
        self.syncer.write_durable(batch).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Written later, with the next append, never synced on its own: a
        // committed index that rolls back (a crash, or a quiet group's last
        // commit) only means re-applying from an earlier point after a
        // restart, up to what the group's leader confirms; every read is a
        // ReadIndex on the leader, so none sees the older state.
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(MetaTag::Committed)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.db.cf(CF_LOG).map_err(io_err)?;
        let mut batch = WriteBatch::default();
        let entries: Vec<Entry> = entries.into_iter().collect();
        let started = std::time::Instant::now();
        for entry in &entries {
            batch.put_cf(cf, log_key(self.group, entry.log_id.index), encode(entry));
        }
        self.take_committed(&mut batch)?;
        self.cache().append(entries);
        crate::metrics::stage(crate::metrics::Stage::Append, started.elapsed());
        self.syncer.write_then(batch, Box::new(move |result| callback.io_completed(result)));
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> io::Result<()> {
        let from = last.map_or(0, |id| id.index + 1);
        self.cache().retain(|index| index < from);
        let cf = self.db.cf(CF_LOG).map_err(io_err)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, log_key(self.group, from), log_key(self.group, u64::MAX));
        batch.delete_cf(cf, log_key(self.group, u64::MAX));
        self.syncer.write_durable(batch).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        self.cache().retain(|index| index > log_id.index);
        let cf = self.db.cf(CF_LOG).map_err(io_err)?;
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, MetaTag::LastPurged, &log_id)?;
        batch.delete_range_cf(cf, log_key(self.group, 0), log_key(self.group, log_id.index + 1));
        self.syncer.write_then(
            batch,
            Box::new(|result| {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "cannot purge the log; it is purged again with the next purge");
                }
            }),
        );
        Ok(())
    }
}
