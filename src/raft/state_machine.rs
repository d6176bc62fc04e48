//! openraft's state machine for one group: the pure lock table, applied.
//!
//! Invariants:
//! - the table is changed only by `apply` (and replaced by an installed
//!   snapshot), in log order, so every replica holds the same table;
//! - an entry's commands apply in their batch order, under the rules the
//!   entry carries, all at the entry's log index;
//! - every entry's outcomes (none for a blank or membership entry) are
//!   handed to the [`ApplyObserver`] synchronously, before the next entry,
//!   so waiters, the lease keeper and watchers see every change in order;
//!   the observer must not block;
//! - `GroupState::index` is the index of the last lock command the table
//!   applied, changed under the table's write lock, so a reader sees a
//!   table and the index it reflects together;
//! - the table lives in memory; after a restart openraft rebuilds it from the
//!   latest snapshot plus the log up to the persisted commit index;
//! - a snapshot is written (synced) before it becomes current
//!   (`store::snapshot`).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use super::proposal::Proposal;
use super::store::snapshot::{SnapshotBuilder, SnapshotStore};
use super::types::{Committed, LogId, NodeInfo, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::codec::decode;
use crate::lock::{Limits, LockTable, Outcome, TableSnapshot};
use crate::metrics::Stage;
use crate::routing::GroupId;
use crate::storage::Db;

/// Told of every applied entry (with the outcomes of its lock commands),
/// every installed snapshot, and the removal of this node's replica of a
/// group (after which this node applies none of that group's entries).
pub trait ApplyObserver: Send + Sync + 'static {
    fn applied(&self, group: GroupId, index: u64, outcomes: &[Outcome]);
    fn restored(&self, group: GroupId, index: u64, table: &LockTable);
    fn departed(&self, group: GroupId);
}

/// The part of a group's state that readers share with the state machine.
pub struct GroupState {
    pub table: RwLock<LockTable>,
    /// The log index the table reflects (see the module doc).
    index: AtomicU64,
}

impl GroupState {
    /// Runs `f` on the table under a short read lock (never across an await).
    pub fn read<T>(&self, f: impl FnOnce(&LockTable) -> T) -> T {
        let table = self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&table)
    }

    /// Runs `f` on the table and says which log index the table reflects.
    pub fn read_at<T>(&self, f: impl FnOnce(&LockTable) -> T) -> (T, u64) {
        let table = self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (f(&table), self.index.load(Ordering::Acquire))
    }
}

/// A group's openraft instance, running this state machine.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

pub struct StateMachine {
    group: GroupId,
    shared: Arc<GroupState>,
    snapshots: SnapshotStore,
    limits: Limits,
    observer: Arc<dyn ApplyObserver>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl StateMachine {
    pub fn new(group: GroupId, db: Db, limits: Limits, observer: Arc<dyn ApplyObserver>) -> Self {
        let table = RwLock::new(LockTable::new(limits.clone()));
        let shared = Arc::new(GroupState { table, index: AtomicU64::new(0) });
        let snapshots = SnapshotStore::new(db, group);
        Self { group, shared, snapshots, limits, observer, last_applied: None, membership: StoredMembership::default() }
    }

    pub fn shared(&self) -> Arc<GroupState> {
        self.shared.clone()
    }

    fn apply_one(&mut self, index: u64, payload: &EntryPayload<Proposal, u64, NodeInfo>) -> Committed {
        let EntryPayload::Normal(proposal) = payload else {
            // The table is as it was: it now reflects this index too.
            self.shared.index.store(index, Ordering::Release);
            self.observer.applied(self.group, index, &[]);
            return Committed { index, ..Committed::default() };
        };
        let started = Instant::now();
        if let Some(submitted) = proposal.submitted() {
            crate::metrics::stage(Stage::Commit, started.saturating_duration_since(submitted));
        }
        let batch = match proposal.batch() {
            Ok(batch) => batch,
            Err(why) => {
                // Every replica refuses the same bytes the same way.
                tracing::error!(group = self.group, index, %why, "a log entry does not decode; it changes nothing");
                self.shared.index.store(index, Ordering::Release);
                self.observer.applied(self.group, index, &[]);
                return Committed { index, ..Committed::default() };
            }
        };
        let outcomes: Vec<Outcome> = {
            let mut table = self.shared.table.write().unwrap_or_else(|p| p.into_inner());
            self.shared.index.store(index, Ordering::Release);
            batch.commands.iter().map(|cmd| table.apply_under(batch.rules, index, cmd)).collect()
        };
        self.observer.applied(self.group, index, &outcomes);
        crate::metrics::stage(Stage::Apply, started.elapsed());
        Committed { index, outcomes, applied_at: Some(Instant::now()) }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            if let EntryPayload::Membership(m) = &entry.payload {
                self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
            }
            let response = self.apply_one(entry.log_id.index, &entry.payload);
            self.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let table = self.shared.read(|t| t.snapshot());
        let meta = SnapshotMeta { last_log_id: self.last_applied, last_membership: self.membership.clone() };
        self.snapshots.builder(table, meta)
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let image: TableSnapshot = decode(&snapshot)?;
        let table = LockTable::restore(image, self.limits.clone()).map_err(io_err)?;
        self.snapshots.save(meta.clone(), snapshot)?;
        let index = meta.last_log_id.map_or(0, |id| id.index);
        self.observer.restored(self.group, index, &table);
        let mut current = self.shared.table.write().unwrap_or_else(|p| p.into_inner());
        *current = table;
        self.shared.index.store(index, Ordering::Release);
        drop(current);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        self.snapshots.current()
    }
}
