//! Routing: which Raft group a lock name belongs to, and where it lives.
//!
//! Shared by the server and the client library, so both always agree.

mod group;
mod placement;

pub use group::{group_of, GroupId};
pub use placement::{fallback_leader, Placement};
