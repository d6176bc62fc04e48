//! Cluster changes: a node joins or leaves the node list (the meta group,
//! once), and voter changes of one group through its leader.
//!
//! Invariant: each change goes to the group's leader (one hop at most) and
//! is retried while the group elects one. Adding or removing a node changes
//! only the node list; each group's leader then moves its voters to the new
//! placement (`server::reconciler`), so a node's replicas move one safe
//! step at a time and a crash at any step resumes where it stopped.

use super::LockService;
use crate::error::{ApiError, ErrorCode};
use crate::raft::membership::{MembershipChange, MembershipError};
use crate::raft::{NodeId, NodeInfo};
use crate::routing::{GroupId, Placement};
use crate::server::forward;

impl LockService {
    /// Applies `change` to `group` through its leader (one hop if need be),
    /// retrying while the group elects a leader.
    pub async fn change_membership(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        let router = self.groups.router();
        let remote = |leader| forward::change_membership(router, leader, group, change);
        self.proposer.on_leader(group, || self.change_membership_local(group, change), remote).await
    }

    /// One attempt on this node; `NotLeader` unless it leads the group.
    pub async fn change_membership_local(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        match self.groups.change_membership(group, change).await {
            Ok(()) => Ok(()),
            Err(MembershipError::NotLeader(leader)) => Err(ApiError::not_leader(leader.map(|n| n.client_addr))),
            Err(MembershipError::Failed(why)) => Err(ApiError::new(ErrorCode::Unavailable, format!("{why}: retry"))),
        }
    }

    /// Adds node `id` to the cluster; returns how many groups placement
    /// gives it (their leaders move replicas onto it in the background;
    /// `shardlock status` shows the groups still moving).
    pub async fn add_node(&self, id: NodeId, info: NodeInfo) -> Result<u32, ApiError> {
        let meta = self.groups.meta_id();
        self.change_membership(meta, &MembershipChange::AddNode { id, info }).await?;
        let mut nodes: Vec<NodeId> = self.groups.cluster().nodes.keys().copied().collect();
        nodes.push(id);
        Ok(Placement::new(self.config.groups, &nodes, self.config.replication_factor).load(id) as u32)
    }

    /// Removes node `id` from the cluster; returns how many groups it held
    /// by placement (their leaders move those replicas to other nodes).
    pub async fn remove_node(&self, id: NodeId) -> Result<u32, ApiError> {
        let held = self.groups.cluster().placement.load(id) as u32;
        let meta = self.groups.meta_id();
        self.change_membership(meta, &MembershipChange::RemoveNode { id }).await?;
        Ok(held)
    }
}
