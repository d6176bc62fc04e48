//! openraft's storage conformance suite against the RocksDB log store and
//! the lock-table state machine.

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use super::log::LogStore;
use crate::lock::{Limits, LockTable, Outcome};
use crate::raft::state_machine::{ApplyObserver, StateMachine};
use crate::raft::types::TypeConfig;
use crate::routing::GroupId;
use crate::storage::syncer::Syncer;
use crate::storage::Db;

struct Ignore;

impl ApplyObserver for Ignore {
    fn applied(&self, _: GroupId, _: u64, _: &[Outcome]) {}
    fn restored(&self, _: GroupId, _: u64, _: &LockTable) {}
    fn departed(&self, _: GroupId) {}
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), true).expect("open db");
        let syncer = Syncer::start(db.clone(), true).expect("syncer");
        // A non-zero group, so that keys of other groups would show up if the
        // store ever read outside its own prefix.
        let group = 7;
        let log = LogStore::new(db.clone(), syncer, group);
        let sm = StateMachine::new(group, db, Limits::default(), Arc::new(Ignore));
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_passes_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(Builder).await?;
    Ok(())
}
