//! The receiving side of Raft traffic: one gRPC service for every group.
//!
//! Invariant: a message is handed to the group it names, and only to it; a
//! message for a group this node does not host, or one that does not decode,
//! is refused without touching any group.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::types::{Raft, Snapshot, SnapshotMeta, Vote};
use crate::proto::peer::raft_peer_server::RaftPeer;
use crate::proto::peer::{RaftKind, RaftReply, RaftRequest};
use crate::storage::codec::{decode, encode};

pub struct RaftPeerService {
    rafts: Arc<Vec<Raft>>,
}

impl RaftPeerService {
    pub fn new(rafts: Arc<Vec<Raft>>) -> Self {
        Self { rafts }
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
        let req = request.into_inner();
        let raft = self
            .rafts
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
                encode(&raft.handle_transfer_leader(decode(&req.payload).map_err(bad)?).await.map_err(failed)?)
            }
            RaftKind::Unspecified => return Err(bad("kind is unspecified")),
        };
        Ok(Response::new(RaftReply { payload }))
    }
}
