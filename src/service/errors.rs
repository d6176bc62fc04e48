//! The request path's own errors, as every surface reports them.
//!
//! Invariant: a refusal that a client can cure by retrying (no leader, no
//! quorum, a stopping node) is a retryable code; an internal error names
//! what went wrong and is logged where it is made.

use crate::error::{ApiError, ErrorCode};
use crate::raft::{Cluster, GroupError};
use crate::routing::GroupId;

/// A retryable failure: `why`, then "retry".
pub fn unavailable(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("{why}: retry"))
}

/// Refused because this node is shutting down.
pub fn draining() -> ApiError {
    ApiError::new(ErrorCode::Draining, "this node is shutting down: retry on another node")
}

/// This node's replica of the lock's group was removed: it applies no more
/// of the group's entries, so the client retries (same key) elsewhere.
pub fn replica_left() -> ApiError {
    unavailable("this node no longer holds a replica of the lock's group")
}

/// Refused because the cluster removed this node; names the nodes to use.
pub fn removed(cluster: &Cluster) -> ApiError {
    let me = cluster.me();
    let nodes = cluster.nodes();
    let addrs: Vec<&str> =
        nodes.nodes.iter().filter(|(id, _)| **id != me).map(|(_, n)| n.client_addr.as_str()).collect();
    let msg = format!("this node was removed from the cluster: send requests to one of {}", addrs.join(", "));
    ApiError::new(ErrorCode::Unavailable, msg)
}

/// A bug or a broken invariant: logged here, with its cause.
pub fn internal(what: impl std::fmt::Display) -> ApiError {
    tracing::error!(cause = %what, "internal error");
    ApiError::new(ErrorCode::Internal, format!("internal error: {what}; see the server log"))
}

/// The API error for a write or read that did not happen on this node.
pub fn refused(group: GroupId, err: GroupError) -> ApiError {
    match err {
        GroupError::NotLeader(leader) => ApiError::not_leader(leader.map(|n| n.client_addr)),
        GroupError::NoQuorum(q) => unavailable(format!("group {group} has no quorum ({q})")),
        GroupError::Stopped(why) => unavailable(format!("raft group {group} stopped ({why})")),
    }
}
