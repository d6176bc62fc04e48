//! One-hop forwarding of client work to a group's leader, over the peer
//! connection this node keeps to it.
//!
//! Invariant: a forwarded request is served only by the receiving node's
//! local Raft (`propose_local` / `read_local`), never forwarded again, so a
//! stale view of the leader costs at most one extra hop and can never loop;
//! the sender retries with its refreshed view. A refusal carries the
//! receiver's `ApiError` (code, message, leader) unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::read::{ReadAnswer, ReadQuery};
use super::service::{Applied, LockService};
use crate::codec::{decode, encode};
use crate::error::{ApiError, ErrorCode};
use crate::lock::{AcquireCmd, Command, Outcome};
use crate::peer::{Answer, CallError, Kind, Links, Method};
use crate::raft::membership::MembershipChange;
use crate::raft::network::PeerRouter;
use crate::raft::NodeId;
use crate::routing::GroupId;

/// Longest a forwarded request may take (covers a commit under load).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Adding a learner waits for it to catch up.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

/// An `ApiError` as a refusal's body.
#[derive(Serialize, Deserialize)]
struct Refusal {
    code: i32,
    message: String,
    leader: Option<String>,
}

fn refusal(err: &ApiError) -> Vec<u8> {
    encode(&Refusal { code: err.code as i32, message: err.message.clone(), leader: err.leader.clone() })
}

fn unavailable(leader: NodeId, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("cannot reach the group leader (node {leader}): {e}; retry"))
}

/// One forwarded call to `leader` and its decoded answer.
async fn call<T: serde::de::DeserializeOwned>(
    links: &Links,
    leader: NodeId,
    method: Method,
    group: GroupId,
    body: &[u8],
    ttl: Duration,
) -> Result<T, ApiError> {
    let frame = links.call(leader, method, group, body, ttl).await.map_err(|e| match e {
        CallError::Timeout => unavailable(leader, "no answer in time"),
        CallError::Unreachable(why) => unavailable(leader, why),
    })?;
    if frame.kind == Kind::Reply {
        return decode(&frame.body).map_err(|e| unavailable(leader, e));
    }
    let r: Refusal = decode(&frame.body).map_err(|e| unavailable(leader, e))?;
    let code = ErrorCode::try_from(r.code).unwrap_or(ErrorCode::Internal);
    Err(ApiError { code, message: r.message, leader: r.leader })
}

/// Proposes `cmd` on node `leader`.
pub async fn propose(router: &PeerRouter, leader: NodeId, group: GroupId, cmd: &Command) -> Result<Applied, ApiError> {
    let (index, outcome): (u64, Outcome) =
        call(router.links(), leader, Method::Propose, group, &encode(cmd), FORWARD_TIMEOUT).await?;
    Ok(Applied { index, outcome })
}

/// Waits out the blocking acquire `cmd` on node `node`: its grant's index
/// and the grant.
pub async fn acquire(
    router: &PeerRouter,
    node: NodeId,
    group: GroupId,
    cmd: &AcquireCmd,
) -> Result<(u64, crate::lock::Grant), ApiError> {
    let ttl = Duration::from_millis(cmd.wait_ms) + FORWARD_TIMEOUT;
    call(router.links(), node, Method::Acquire, group, &encode(cmd), ttl).await
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

/// The receiving end: serves forwarded work on this node only.
pub struct ForwardService {
    service: Arc<LockService>,
}

fn bad_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, format!("undecodable forwarded request: {e}"))
}

impl ForwardService {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }

    fn check_group(&self, group: GroupId) -> Result<(), ApiError> {
        if group >= self.service.config().groups {
            return Err(ApiError::new(ErrorCode::InvalidArgument, format!("group {group} does not exist")));
        }
        Ok(())
    }

    /// Serves one forwarded request; its encoded answer or refusal.
    pub async fn handle(&self, method: Method, group: GroupId, body: Bytes) -> Answer {
        self.serve(method, group, body).await.map_err(|e| refusal(&e))
    }

    async fn serve(&self, method: Method, group: GroupId, body: Bytes) -> Result<Vec<u8>, ApiError> {
        match method {
            Method::Propose => {
                self.check_group(group)?;
                let cmd: Command = decode(&body).map_err(bad_body)?;
                let applied = self.service.proposer().propose_local(group, cmd).await?;
                Ok(encode(&(applied.index, applied.outcome)))
            }
            Method::Acquire => {
                self.check_group(group)?;
                let cmd: AcquireCmd = decode(&body).map_err(bad_body)?;
                Ok(encode(&self.service.acquire_forwarded(group, cmd).await?))
            }
            Method::Read => {
                self.check_group(group)?;
                let query: ReadQuery = decode(&body).map_err(bad_body)?;
                Ok(encode(&self.service.read_local(group, &query).await?))
            }
            Method::Membership => {
                if group != self.service.groups().meta_id() {
                    self.check_group(group)?;
                }
                let change: MembershipChange = decode(&body).map_err(bad_body)?;
                self.service.change_membership_local(group, &change).await?;
                Ok(encode(&()))
            }
            Method::Draining => {
                let (node, draining): (NodeId, bool) = decode(&body).map_err(bad_body)?;
                self.service.groups().mark_draining(node, draining);
                tracing::info!(peer = node, draining, "peer draining notice");
                Ok(encode(&()))
            }
            other => Err(ApiError::new(ErrorCode::InvalidArgument, format!("{other:?} is not forwarded work"))),
        }
    }
}
