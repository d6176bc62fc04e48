//! Opening the node's RocksDB with its column families.
//!
//! Invariants: one database per node; every column family listed in
//! [`COLUMN_FAMILIES`] exists after `open`; a synced write is on disk when
//! `write` returns, unless the node runs with the unsafe no-fsync switch; a
//! buffered write (`write_buffered`) is readable at once and reaches the WAL
//! file, and the disk, at the next `flush_wal` (the WAL syncer's).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, Options, WriteBatch, WriteOptions, DB};

/// Column families, one per kind of data.
pub const CF_LOG: &str = "raft_log";
pub const CF_META: &str = "raft_meta";
pub const CF_SNAPSHOTS: &str = "snapshots";
pub const COLUMN_FAMILIES: [&str; 3] = [CF_LOG, CF_META, CF_SNAPSHOTS];

/// The memtable size of every column family.
const MEMTABLE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("column family {0} is missing: the data directory is damaged or from another program")]
    MissingCf(&'static str),
}

/// The node's database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DB>,
    sync: bool,
}

impl Db {
    /// Opens (creating if needed) the database at `path`. With `sync` false
    /// writes are not fsynced: only for the `unsafe_no_fsync` benchmark mode.
    pub fn open(path: &Path, sync: bool) -> Result<Self, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // RocksDB's own LOG file: warnings only, a few files kept (its info
        // lines cost CPU on the write path and grow without bound).
        opts.set_log_level(rocksdb::LogLevel::Warn);
        opts.set_keep_log_file_num(4);
        // Unsynced writes stay in RocksDB's WAL buffer until the WAL syncer's
        // FlushWAL(sync) writes and syncs them together: no write system
        // call per log append. Synced writes (`write`) still reach the disk
        // before they return.
        // (Not in no-fsync mode: no syncer flushes there.)
        opts.set_manual_wal_flush(sync);
        // Memtables of 4 MiB (RocksDB's default is 64): the log is purged
        // behind snapshots and read from a cache in front, and snapshots are
        // read once per restart, so a large memtable only holds memory
        // (measured: loadtest/state.sh, bench/RESULTS.md). Set on every
        // column family: `DB::open_cf` gives each one default options, so
        // a database-wide setting alone left them at 64 MiB.
        let names = std::iter::once(rocksdb::DEFAULT_COLUMN_FAMILY_NAME).chain(COLUMN_FAMILIES);
        let cfs = names.map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_write_buffer_size(MEMTABLE_BYTES);
            rocksdb::ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Self { inner: Arc::new(db), sync })
    }

    pub fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StorageError> {
        self.inner.cf_handle(name).ok_or(StorageError::MissingCf(name))
    }

    pub fn raw(&self) -> &DB {
        &self.inner
    }

    /// Writes a batch, synced to disk unless the node is in no-fsync mode.
    pub fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        self.inner.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Writes a batch to the WAL without syncing: readable at once, durable
    /// after the next [`super::syncer::Syncer`] sync.
    pub fn write_buffered(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.inner.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Writes and syncs every buffered write (what the WAL syncer does).
    pub fn flush_wal(&self) -> Result<(), StorageError> {
        self.inner.flush_wal(true)?;
        Ok(())
    }

    /// Whether synced writes really sync (false only in no-fsync mode).
    pub fn fsync(&self) -> bool {
        self.sync
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::keys::{log_key, parse_log_key};

    #[test]
    fn synced_batches_ranges_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), true).unwrap();
            let log = db.cf(CF_LOG).unwrap();
            let mut batch = WriteBatch::default();
            for g in 0..3u32 {
                for i in 1..=5u64 {
                    batch.put_cf(log, log_key(g, i), format!("{g}/{i}"));
                }
            }
            db.write(batch).unwrap();
            let mut purge = WriteBatch::default();
            purge.delete_range_cf(log, log_key(1, 0), log_key(1, 4));
            db.write(purge).unwrap();
        }
        let db = Db::open(dir.path(), true).unwrap();
        let log = db.cf(CF_LOG).unwrap();
        let group1: Vec<u64> = db
            .raw()
            .iterator_cf(log, rocksdb::IteratorMode::From(&log_key(1, 0), rocksdb::Direction::Forward))
            .map(|kv| parse_log_key(&kv.unwrap().0).unwrap())
            .take_while(|(g, _)| *g == 1)
            .map(|(_, i)| i)
            .collect();
        assert_eq!(group1, vec![4, 5]);
        assert_eq!(db.raw().get_cf(log, log_key(2, 5)).unwrap().as_deref(), Some(&b"2/5"[..]));
    }

    #[test]
    fn every_column_family_gets_the_small_memtable() {
        let dir = tempfile::tempdir().unwrap();
        drop(Db::open(dir.path(), false).unwrap());
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("OPTIONS-"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .max_by_key(|text| text.len())
            .unwrap();
        let sizes: Vec<&str> = options.lines().filter(|l| l.trim().starts_with("write_buffer_size=")).collect();
        assert_eq!(sizes.len(), 1 + COLUMN_FAMILIES.len(), "default plus ours: {sizes:?}");
        assert!(sizes.iter().all(|l| l.trim() == format!("write_buffer_size={MEMTABLE_BYTES}")), "{sizes:?}");
    }
}
