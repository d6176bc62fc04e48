//! Raft: many openraft groups per node, each running the lock table.
//!
//! Every openraft type stays inside `src/raft` and `src/storage`.
//! - [`types`]: the type configuration and short names;
//! - [`proposal`]: an entry's data, a batch of commands encoded once;
//! - [`completion`]: openraft's responder, a callback run once;
//! - [`submit`]: writes and reads of a group in shardlock's terms;
//! - [`state_machine`]: the lock table as openraft's state machine;
//! - [`network`]: every group's RPCs to a peer, over its one connection;
//! - [`group_network`]: one group's network to one peer, whose append
//!   stream folds commit-only messages into the append that follows;
//! - [`service`]: the receiving end, which hands messages to their group;
//! - [`groups`]: starting, bootstrapping and looking up a node's groups;
//! - [`cluster`]: the node list (the meta group's membership) and where
//!   each group lives;
//! - [`quiesce`]: idle groups stop their timers;
//! - [`liveness`]: node pings that watch the leaders of quiesced groups.

pub mod cluster;
pub mod completion;
pub mod group_network;
pub mod groups;
pub mod liveness;
pub mod membership;
pub mod network;
pub mod proposal;
pub mod quiesce;
pub mod service;
pub mod state_machine;
pub mod store;
pub mod submit;
pub mod types;

pub use groups::Groups;
pub use state_machine::{ApplyObserver, GroupState, Raft};
pub use submit::{Committed, GroupError};
pub use types::{NodeId, NodeInfo, TypeConfig};
