//! The sending side of forwarding: one function per kind of work, each one
//! call to one node with a deadline.
//!
//! Invariant: a peer that cannot be reached, does not answer in time or
//! answers something undecodable is `UNAVAILABLE` (retryable); a refusal
//! comes back as the receiver's error.

use std::time::Duration;

use super::Refusal;
use crate::codec::{decode, encode};
use crate::error::{ApiError, ErrorCode};
use crate::lock::{AcquireCmd, Command, Grant};
use crate::peer::{CallError, Kind, Links, Method};
use crate::raft::membership::MembershipChange;
use crate::raft::network::PeerRouter;
use crate::raft::NodeId;
use crate::routing::GroupId;
use crate::service::batcher::Applied;
use crate::service::query::{ReadAnswer, ReadQuery};
use crate::service::watch::relay::{RelayRead, RelayRequest};

/// Longest a forwarded request may take (covers a commit under load).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Adding a learner waits for it to catch up.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

fn unavailable(node: NodeId, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("cannot reach the group leader (node {node}): {e}; retry"))
}

/// One forwarded call to `node` and its decoded answer.
async fn call<T: serde::de::DeserializeOwned>(
    links: &Links,
    node: NodeId,
    method: Method,
    group: GroupId,
    body: &[u8],
    ttl: Duration,
) -> Result<T, ApiError> {
    let frame = links.call(node, method, group, body, ttl).await.map_err(|e| match e {
        CallError::Timeout => unavailable(node, "no answer in time"),
        CallError::Unreachable(why) => unavailable(node, why),
    })?;
    if frame.kind == Kind::Reply {
        return decode(&frame.body).map_err(|e| unavailable(node, e));
    }
    let refusal: Refusal = decode(&frame.body).map_err(|e| unavailable(node, e))?;
    Err(refusal.into_error())
}

/// Proposes `cmd` on node `leader`.
pub async fn propose(router: &PeerRouter, leader: NodeId, group: GroupId, cmd: &Command) -> Result<Applied, ApiError> {
    call(router.links(), leader, Method::Propose, group, &encode(cmd), FORWARD_TIMEOUT).await
}

/// Waits out the blocking acquire `cmd` on node `node`: its grant's index
/// and the grant.
pub async fn acquire(
    router: &PeerRouter,
    node: NodeId,
    group: GroupId,
    cmd: &AcquireCmd,
) -> Result<(u64, Grant), ApiError> {
    let ttl = Duration::from_millis(cmd.wait_ms) + FORWARD_TIMEOUT;
    call(router.links(), node, Method::Acquire, group, &encode(cmd), ttl).await
}

/// Reads the watched events of `group` from `req.from` on at node `node`,
/// which holds the group (a long poll of up to `req.wait_ms`).
pub async fn watch_read(
    router: &PeerRouter,
    node: NodeId,
    group: GroupId,
    req: &RelayRequest,
) -> Result<RelayRead, ApiError> {
    let ttl = Duration::from_millis(req.wait_ms) + FORWARD_TIMEOUT;
    call(router.links(), node, Method::WatchRead, group, &encode(req), ttl).await
}

/// Runs a linearizable read on node `leader`.
pub async fn read(
    router: &PeerRouter,
    leader: NodeId,
    group: GroupId,
    query: &ReadQuery,
) -> Result<(u64, ReadAnswer), ApiError> {
    call(router.links(), leader, Method::Read, group, &encode(query), FORWARD_TIMEOUT).await
}

/// Applies a membership change of `group` on node `leader`.
pub async fn change_membership(
    router: &PeerRouter,
    leader: NodeId,
    group: GroupId,
    change: &MembershipChange,
) -> Result<(), ApiError> {
    call(router.links(), leader, Method::Membership, group, &encode(change), MEMBERSHIP_TIMEOUT).await
}

/// Tells node `peer` whether this node (`me`) is draining; best effort.
pub async fn announce(router: &PeerRouter, peer: NodeId, me: NodeId, draining: bool) {
    let body = encode(&(me, draining));
    let sent: Result<(), ApiError> =
        call(router.links(), peer, Method::Draining, 0, &body, Duration::from_secs(1)).await;
    if let Err(err) = sent {
        tracing::debug!(peer, error = %err.message, "draining notice not delivered");
    }
}
