//! The receiving side of Raft traffic: one gRPC service for every group.
//!
//! Invariants: a message is handed to the group it names, and only to it; a
//! message for a group this node does not host, or one that does not decode,
//! is refused without touching any group; a leadership transfer wakes the
//! group's timers here (see `quiesce`); pings (node liveness) answer at
//! once.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::quiesce::Quiescer;
use super::types::{NodeId, Snapshot, SnapshotMeta, Vote};
use crate::proto::peer::raft_peer_server::RaftPeer;
use crate::proto::peer::{
    PingReply, PingRequest, RaftBatchReply, RaftBatchRequest, RaftKind, RaftOutcome, RaftReply, RaftRequest,
};
use crate::storage::codec::{decode, encode};

pub struct RaftPeerService {
    quiescer: Arc<Quiescer>,
    me: NodeId,
    /// How long a leadership transfer keeps a follower's timers on.
    transfer_wake: Duration,
}

impl RaftPeerService {
    pub fn new(quiescer: Arc<Quiescer>, me: NodeId, transfer_wake: Duration) -> Self {
        Self { quiescer, me, transfer_wake }
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable raft message: {e}"))
}

fn failed(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft group failed: {e}"))
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    async fn raft(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.handle(request.into_inner()).await.map(Response::new)
    }

    async fn raft_batch(&self, request: Request<RaftBatchRequest>) -> Result<Response<RaftBatchReply>, Status> {
        let requests = request.into_inner().requests;
        if requests.iter().any(|r| r.kind == RaftKind::FullSnapshot as i32) {
            return Err(bad("snapshots travel alone, not in a batch"));
        }
        let answers = futures::future::join_all(requests.into_iter().map(|r| self.handle(r))).await;
        let outcomes = answers
            .into_iter()
            .map(|a| match a {
                Ok(reply) => RaftOutcome { reply: Some(reply), error: String::new() },
                Err(status) => RaftOutcome { reply: None, error: status.message().to_owned() },
            })
            .collect();
        Ok(Response::new(RaftBatchReply { outcomes }))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Ok(Response::new(PingReply { node_id: self.me }))
    }
}

impl RaftPeerService {
    /// Hands one message to the group it names.
    async fn handle(&self, req: RaftRequest) -> Result<RaftReply, Status> {
        let raft = self
            .quiescer
            .rafts()
            .get(req.group as usize)
            .ok_or_else(|| Status::not_found(format!("group {} is not hosted here", req.group)))?;
        let kind = RaftKind::try_from(req.kind).map_err(bad)?;
        let payload = match kind {
            RaftKind::AppendEntries => {
                encode(&raft.append_entries(decode(&req.payload).map_err(bad)?).await.map_err(failed)?)
            }
            RaftKind::Vote => encode(&raft.vote(decode(&req.payload).map_err(bad)?).await.map_err(failed)?),
            RaftKind::PreVote => encode(&raft.pre_vote(decode(&req.payload).map_err(bad)?).await.map_err(failed)?),
            RaftKind::FullSnapshot => {
                let (vote, meta): (Vote, SnapshotMeta) = decode(&req.payload).map_err(bad)?;
                let snapshot = Snapshot { meta, snapshot: req.data };
                encode(&raft.install_full_snapshot(vote, snapshot).await.map_err(failed)?)
            }
            RaftKind::TransferLeader => {
                self.quiescer.wake_follower(req.group, self.transfer_wake);
                encode(&raft.handle_transfer_leader(decode(&req.payload).map_err(bad)?).await.map_err(failed)?)
            }
            RaftKind::Unspecified => return Err(bad("kind is unspecified")),
        };
        Ok(RaftReply { payload })
    }
}
