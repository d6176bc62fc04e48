//! Raft: many openraft groups per node, each running the lock table.
//!
//! Every openraft type stays inside `src/raft` and `src/storage`.
//! - [`types`]: the type configuration and short names;
//! - [`state_machine`]: the lock table as openraft's state machine;
//! - [`network`]: one channel per peer carrying every group's RPCs;
//! - [`batcher`]: many groups' messages to one peer in one call;
//! - [`service`]: the receiving end of that channel;
//! - [`groups`]: starting, bootstrapping and looking up a node's groups;
//! - [`quiesce`]: idle groups stop their timers;
//! - [`liveness`]: node pings that watch the leaders of quiesced groups.

pub mod batcher;
pub mod groups;
pub mod liveness;
pub mod membership;
pub mod network;
pub mod quiesce;
pub mod service;
pub mod state_machine;
pub mod types;

pub use groups::Groups;
pub use state_machine::{ApplyObserver, GroupState};
pub use types::{NodeId, NodeInfo, Raft, TypeConfig};

#[cfg(test)]
mod storage_test;
