//! openraft's snapshot storage for one group: the latest snapshot of its
//! lock table, at rest in the node's RocksDB.
//!
//! Invariants: a group has at most one stored snapshot, under
//! `snapshot_key(group)` in the `snapshots` column family; it is written
//! synced before openraft is told it exists (a build or an install), so a
//! snapshot openraft knows of survives a crash; it is stored as its meta and
//! the table's encoded bytes, which are also what travels to a follower.

use std::io;
use std::sync::Arc;

use openraft::storage::RaftSnapshotBuilder;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::lock::TableSnapshot;
use crate::raft::types::{Snapshot, SnapshotData, SnapshotMeta, TypeConfig};
use crate::routing::GroupId;
use crate::storage::db::CF_SNAPSHOTS;
use crate::storage::keys::snapshot_key;
use crate::storage::Db;

/// A snapshot at rest: its meta and the encoded table.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: SnapshotData,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Where one group's snapshot rests.
#[derive(Clone)]
pub struct SnapshotStore {
    db: Db,
    group: GroupId,
}

impl SnapshotStore {
    pub fn new(db: Db, group: GroupId) -> Self {
        Self { db, group }
    }

    /// Stores `data` (an encoded table) as the group's snapshot at `meta`, synced.
    pub fn save(&self, meta: SnapshotMeta, data: SnapshotData) -> io::Result<Snapshot> {
        let stored = StoredSnapshot { meta, data };
        let cf = self.db.cf(CF_SNAPSHOTS).map_err(io_err)?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, snapshot_key(self.group), encode(&stored));
        self.db.write(batch).map_err(io_err)?;
        Ok(Snapshot { meta: stored.meta, snapshot: stored.data })
    }

    /// The group's stored snapshot, if it has one.
    pub fn current(&self) -> io::Result<Option<Snapshot>> {
        let cf = self.db.cf(CF_SNAPSHOTS).map_err(io_err)?;
        let Some(raw) = self.db.raw().get_cf(cf, snapshot_key(self.group)).map_err(io_err)? else {
            return Ok(None);
        };
        let stored: StoredSnapshot = decode(&raw)?;
        Ok(Some(Snapshot { meta: stored.meta, snapshot: stored.data }))
    }

    /// A builder that encodes and stores `table`, taken at `meta`.
    pub fn builder(&self, table: TableSnapshot, meta: SnapshotMeta) -> SnapshotBuilder {
        SnapshotBuilder { store: self.clone(), table: Arc::new(table), meta }
    }
}

/// Encodes and stores a table image taken at one applied index.
pub struct SnapshotBuilder {
    store: SnapshotStore,
    table: Arc<TableSnapshot>,
    meta: SnapshotMeta,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        // Encoding and writing a large table takes a while: off the runtime.
        let (store, table, meta) = (self.store.clone(), self.table.clone(), self.meta.clone());
        tokio::task::spawn_blocking(move || store.save(meta, encode(&*table))).await.map_err(io_err)?
    }
}
