//! openraft's type configuration for shardlock, and short names for its types.
//!
//! Invariant: every openraft type the rest of the crate sees is named here or
//! elsewhere in `src/raft` / `src/storage`, so an openraft upgrade touches
//! those two places only. Log entries carry a [`Proposal`] (a batch of lock
//! commands, encoded once); responses ([`Committed`]) carry the [`Outcome`] of each command;
//! a write's result goes to a [`Completion`] callback.

use serde::{Deserialize, Serialize};

use super::completion::Completion;
use super::proposal::Proposal;
use crate::lock::Outcome;

/// The Raft types of one lock group. Written out (not with openraft's
/// `declare_raft_types!`, which cannot name a responder): the defaults but
/// for the data, response, node and responder types.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = Proposal;
    type R = Committed;
    type NodeId = u64;
    type Node = NodeInfo;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<Self::Term, Self::NodeId>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = Completion<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = openraft::impls::TokioRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

pub type NodeId = u64;
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

/// What applying one entry produced, as openraft hands it back to the
/// proposer: an outcome per lock command of its batch, in order (none for
/// Raft's own blank and membership entries), at the entry's log index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub index: u64,
    pub outcomes: Vec<Outcome>,
    /// When the leader applied the entry, for the `reply` stage (never sent).
    #[serde(skip)]
    pub applied_at: Option<std::time::Instant>,
}

impl std::fmt::Display for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} outcomes at {}", self.outcomes.len(), self.index)
    }
}
