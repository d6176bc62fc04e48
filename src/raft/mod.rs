//! Raft: many openraft groups per node, each running the lock table.
//!
//! Every openraft type stays inside `src/raft`; the rest of the crate sees
//! [`Cluster`] (this node's side of the cluster), [`Groups`] (the registry
//! of its groups) and shardlock's own types.
//! - [`types`]: the type configuration and short names;
//! - [`proposal`]: an entry's data, a batch of commands encoded once;
//! - [`completion`]: openraft's responder, a callback run once;
//! - [`state_machine`]: the lock table as openraft's state machine;
//! - [`store`]: openraft's storage adapters (log, snapshot) on RocksDB;
//! - [`network`]: every group's RPCs to a peer, over its one connection;
//! - [`group_network`]: one group's network to one peer, whose append
//!   stream folds commit-only messages into the append that follows;
//! - [`receive`]: the receiving end, which hands messages to their group;
//! - [`groups`]: the registry: one group at a time (views, writes,
//!   linearizable reads, leader transfers);
//! - [`quiescer`]: the groups' tick switches and activity;
//! - [`liveness`]: node pings that watch the leaders of quiesced groups;
//! - [`nodes`]: the node list and its placement;
//! - [`cluster`]: the node list, where each group lives, and the peers;
//! - [`bootstrap`]: a new cluster's first memberships;
//! - [`membership`]: changing a group's members, and the node list;
//! - [`quiesce`]: idle groups stop their timers;
//! - [`balancer`]: leadership back to each group's preferred node;
//! - [`reconciler`]: each group's voters moved to its placement.

pub mod balancer;
pub mod bootstrap;
pub mod cluster;
pub mod completion;
pub mod group_network;
pub mod groups;
pub mod liveness;
pub mod membership;
pub mod network;
pub mod nodes;
pub mod proposal;
pub mod quiesce;
pub mod quiescer;
pub mod receive;
pub mod reconciler;
pub mod state_machine;
pub mod store;
pub mod types;

pub use cluster::Cluster;
pub use groups::{GroupError, Groups};
pub use state_machine::ApplyObserver;
pub use types::{Committed, NodeId, NodeInfo};
