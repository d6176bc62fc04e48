//! One-hop forwarding of client work to a group's leader, over the peer
//! port's channel.
//!
//! Invariant: a forwarded request is served only by the receiving node's
//! local Raft (`propose_local` / `read_local`), never forwarded again, so a
//! stale view of the leader costs at most one extra hop and can never loop;
//! the sender retries with its refreshed view.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::read::{ReadAnswer, ReadQuery};
use super::service::{Applied, LockService};
use crate::error::{ApiError, ErrorCode};
use crate::lock::Command;
use crate::proto::peer::forward_client::ForwardClient;
use crate::proto::peer::forward_server::Forward;
use crate::proto::peer::{
    DrainingAck, DrainingNotice, MembershipReply, MembershipRequest, ProposeReply, ProposeRequest, ReadReply,
    ReadRequest,
};
use crate::raft::membership::MembershipChange;
use crate::raft::network::PeerRouter;
use crate::raft::NodeId;
use crate::routing::GroupId;
use crate::storage::codec::{decode, encode};

/// Longest a forwarded request may take (covers a commit under load).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

fn unavailable(leader: NodeId, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("cannot reach the group leader (node {leader}): {e}; retry"))
}

fn client(router: &PeerRouter, leader: NodeId) -> Result<ForwardClient<tonic::transport::Channel>, ApiError> {
    router.channel(leader).map(ForwardClient::new).map_err(|e| unavailable(leader, e))
}

/// Proposes `cmd` on node `leader`.
pub async fn propose(router: &PeerRouter, leader: NodeId, group: GroupId, cmd: &Command) -> Result<Applied, ApiError> {
    let mut req = Request::new(ProposeRequest { group, command: encode(cmd) });
    req.set_timeout(FORWARD_TIMEOUT);
    let reply = client(router, leader)?.propose(req).await.map_err(|s| ApiError::from_status(&s))?.into_inner();
    let outcome = decode(&reply.outcome).map_err(|e| unavailable(leader, e))?;
    Ok(Applied { index: reply.index, outcome })
}

/// Runs a linearizable read on node `leader`.
pub async fn read(
    router: &PeerRouter,
    leader: NodeId,
    group: GroupId,
    query: &ReadQuery,
) -> Result<(u64, ReadAnswer), ApiError> {
    let mut req = Request::new(ReadRequest { group, query: encode(query) });
    req.set_timeout(FORWARD_TIMEOUT);
    let reply = client(router, leader)?.read(req).await.map_err(|s| ApiError::from_status(&s))?.into_inner();
    let answer = decode(&reply.answer).map_err(|e| unavailable(leader, e))?;
    Ok((reply.index, answer))
}

/// Applies a membership change of `group` on node `leader`.
pub async fn change_membership(
    router: &PeerRouter,
    leader: NodeId,
    group: GroupId,
    change: &MembershipChange,
) -> Result<(), ApiError> {
    let mut req = Request::new(MembershipRequest { group, change: encode(change) });
    // Adding a learner waits for it to catch up.
    req.set_timeout(Duration::from_secs(120));
    client(router, leader)?.change_membership(req).await.map_err(|s| ApiError::from_status(&s))?;
    Ok(())
}

/// Tells node `peer` whether this node (`me`) is draining; best effort.
pub async fn announce(router: &PeerRouter, peer: NodeId, me: NodeId, draining: bool) {
    let Ok(mut client) = client(router, peer) else { return };
    let mut req = Request::new(DrainingNotice { node_id: me, draining });
    req.set_timeout(Duration::from_secs(1));
    if let Err(status) = client.draining(req).await {
        tracing::debug!(peer, error = %status.message(), "draining notice not delivered");
    }
}

/// The receiving end: serves forwarded work on this node only.
pub struct ForwardService {
    service: Arc<LockService>,
}

impl ForwardService {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }

    fn check_group(&self, group: GroupId) -> Result<(), Status> {
        if group >= self.service.config().groups {
            return Err(Status::invalid_argument(format!("group {group} does not exist")));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Forward for ForwardService {
    async fn propose(&self, request: Request<ProposeRequest>) -> Result<Response<ProposeReply>, Status> {
        let req = request.into_inner();
        self.check_group(req.group)?;
        let cmd: Command = decode(&req.command).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let applied = self.service.propose_local(req.group, &cmd).await.map_err(|e| e.to_status())?;
        Ok(Response::new(ProposeReply { index: applied.index, outcome: encode(&applied.outcome) }))
    }

    async fn change_membership(
        &self,
        request: Request<MembershipRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let req = request.into_inner();
        self.check_group(req.group)?;
        let change: MembershipChange = decode(&req.change).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.service.change_membership_local(req.group, &change).await.map_err(|e| e.to_status())?;
        Ok(Response::new(MembershipReply {}))
    }

    async fn draining(&self, request: Request<DrainingNotice>) -> Result<Response<DrainingAck>, Status> {
        let notice = request.into_inner();
        self.service.groups().mark_draining(notice.node_id, notice.draining);
        tracing::info!(peer = notice.node_id, draining = notice.draining, "peer draining notice");
        Ok(Response::new(DrainingAck {}))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadReply>, Status> {
        let req = request.into_inner();
        self.check_group(req.group)?;
        let query: ReadQuery = decode(&req.query).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (index, answer) = self.service.read_local(req.group, &query).await.map_err(|e| e.to_status())?;
        Ok(Response::new(ReadReply { index, answer: encode(&answer) }))
    }
}
