//! openraft's type configuration for shardlock, and short names for its types.
//!
//! Invariant: every openraft type the rest of the crate sees is named here or
//! elsewhere in `src/raft` / `src/storage`, so an openraft upgrade touches
//! those two places only. Log entries carry lock [`Command`]s; responses carry
//! the [`Outcome`] of applying them.

use serde::{Deserialize, Serialize};

use crate::lock::{Command, Outcome};

openraft::declare_raft_types!(
    /// The Raft types of one lock group.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig, crate::raft::state_machine::StateMachine>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// A snapshot travels and rests as one encoded buffer (see `state_machine`).
pub type SnapshotData = Vec<u8>;

/// Where a node can be reached; carried in every group's membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub client_addr: String,
    pub peer_addr: String,
}

/// What applying one entry produced: an outcome for lock commands, nothing
/// for Raft's own blank and membership entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub outcome: Option<Outcome>,
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Some(outcome) => write!(f, "{outcome}"),
            None => f.write_str("none"),
        }
    }
}
