//! Routing: which Raft group a lock name belongs to.
//!
//! Shared by the server and the client library, so both always agree. Later
//! this module also holds the topology and the leader cache.

mod group;

pub use group::{group_of, GroupId};
