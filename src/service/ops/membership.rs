//! Add-node and remove-node (admin): a node joins or leaves the cluster's
//! node list (the meta group), once.
//!
//! Invariant: each change goes to the meta group's leader (one hop at
//! most) and is retried while it elects one. It changes only the node
//! list; each group's leader then moves its voters to the new placement
//! (`raft::reconciler`), one safe step at a time, so a crash at any step
//! resumes where it stopped.

use crate::error::{ApiError, ErrorCode};
use crate::raft::membership::MembershipChange;
use crate::raft::{NodeId, NodeInfo};
use crate::routing::Placement;
use crate::service::LockService;

#[derive(Clone, Debug)]
pub struct AddNode {
    pub id: NodeId,
    pub client_addr: String,
    pub peer_addr: String,
}

impl AddNode {
    fn check(&self) -> Result<(), ApiError> {
        for (what, addr) in [("client_addr", &self.client_addr), ("peer_addr", &self.peer_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                let msg = format!("{what} {addr:?} is not an ip:port address");
                return Err(ApiError::new(ErrorCode::InvalidArgument, msg));
            }
        }
        if self.id == 0 {
            return Err(ApiError::new(ErrorCode::InvalidArgument, "node_id must be at least 1"));
        }
        Ok(())
    }

    /// Adds the node; returns how many groups placement gives it (their
    /// leaders move replicas onto it in the background; `shardlock status`
    /// shows the groups still moving).
    pub async fn run(self, svc: &LockService) -> Result<u32, ApiError> {
        self.check()?;
        let info = NodeInfo { client_addr: self.client_addr, peer_addr: self.peer_addr };
        let meta = svc.groups().meta_id();
        svc.change_membership(meta, &MembershipChange::AddNode { id: self.id, info }).await?;
        let mut nodes: Vec<NodeId> = svc.cluster().nodes().nodes.keys().copied().collect();
        nodes.push(self.id);
        let config = svc.config();
        Ok(Placement::new(config.groups, &nodes, config.replication_factor).load(self.id) as u32)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RemoveNode {
    pub id: NodeId,
}

impl RemoveNode {
    /// Removes the node; returns how many groups it held by placement
    /// (their leaders move those replicas to other nodes).
    pub async fn run(self, svc: &LockService) -> Result<u32, ApiError> {
        let held = svc.cluster().nodes().placement.load(self.id) as u32;
        let meta = svc.groups().meta_id();
        svc.change_membership(meta, &MembershipChange::RemoveNode { id: self.id }).await?;
        Ok(held)
    }
}
