//! What the integration tests and benchmarks reach beyond the public API,
//! in one documented place: a node's Raft state to wait on, the data
//! directory's storage to build fixtures with, and the test-only fault
//! switches. Nothing here is for production use.

use std::sync::Arc;

use crate::node::Node;
use crate::raft::Groups;
use crate::routing::GroupId;

pub use crate::faults::SLOW_DISK_SWITCH;
pub use crate::storage::db::{CF_LOG, CF_META, CF_SNAPSHOTS};
pub use crate::storage::identity::ensure as ensure_identity;
pub use crate::storage::Db;

/// A read-only look at one node's Raft groups, to wait on exact state
/// instead of polling an API. Cheap to clone; it outlives nothing it reads.
#[derive(Clone)]
pub struct Probe {
    groups: Arc<Groups>,
}

impl Probe {
    pub fn of(node: &Node) -> Self {
        Self { groups: node.groups().clone() }
    }

    /// The highest log index of `group` this node has applied.
    pub fn applied_index(&self, group: GroupId) -> u64 {
        self.groups.view(group).applied_index
    }

    /// The locks in this node's copy of `group`'s table.
    pub fn locks(&self, group: GroupId) -> usize {
        self.groups.state(group).read(|t| t.len())
    }
}
