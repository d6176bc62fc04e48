//! Changing the voters of a group safely: a new node joins as a learner,
//! catches up, and only then becomes a voter; a node leaves by one
//! membership change (openraft's joint consensus keeps every step safe).
//!
//! Invariants: changes run on the group leader only; they are idempotent
//! (adding a voter twice or removing an absent one succeeds without a new
//! entry), so an operator can simply retry a partly applied change.

use std::collections::BTreeSet;

use openraft::errors::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::types::{NodeId, NodeInfo};
use super::Groups;
use crate::routing::GroupId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    AddVoter {
        id: NodeId,
        info: NodeInfo,
    },
    RemoveVoter {
        id: NodeId,
    },
    /// Of the meta group: `id` joins the cluster's node list.
    AddNode {
        id: NodeId,
        info: NodeInfo,
    },
    /// Of the meta group: `id` leaves the cluster's node list.
    RemoveNode {
        id: NodeId,
    },
    /// Sent by a group's leader to a voter it removed: openraft stops
    /// replicating to it before it sees the change, so it learns it here.
    Left {
        id: NodeId,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("this node does not lead the group")]
    NotLeader(Option<NodeInfo>),
    #[error("membership change failed: {0}")]
    Failed(String),
}

pub(super) fn failed(err: RaftError<super::TypeConfig, ClientWriteError<super::TypeConfig>>) -> MembershipError {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader(f.leader_node),
        other => MembershipError::Failed(other.to_string()),
    }
}

impl Groups {
    /// `NotLeader` (naming the leader) unless this node leads `group`.
    pub(super) fn check_leads(&self, group: GroupId) -> Result<(), MembershipError> {
        if self.view(group).is_leader {
            return Ok(());
        }
        let leader = self.view(group).leader.and_then(|id| self.node_info(group, id));
        Err(MembershipError::NotLeader(leader))
    }

    /// The learners of `group` as this node knows them.
    pub fn learner_ids(&self, group: GroupId) -> Vec<NodeId> {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().learner_ids().collect()
    }

    /// The voters of `group` as this node knows them.
    pub fn voter_ids(&self, group: GroupId) -> Vec<NodeId> {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Applies `change` to `group`; this node must lead it.
    pub async fn change_membership(&self, group: GroupId, change: &MembershipChange) -> Result<(), MembershipError> {
        if let MembershipChange::Left { id } = change {
            if *id == self.me {
                self.mark_departed(group);
            }
            return Ok(());
        }
        self.check_leads(group)?;
        self.wake_to_write(group).await;
        let raft = self.raft(group);
        let voters = self.voter_ids(group);
        match change {
            MembershipChange::AddNode { id, info } => return self.add_cluster_node(*id, info.clone()).await,
            MembershipChange::RemoveNode { id } => return self.remove_cluster_node(*id).await,
            MembershipChange::Left { .. } => {}
            MembershipChange::AddVoter { id, info } => {
                if voters.contains(id) {
                    return Ok(());
                }
                // Blocking: returns once the learner has caught up.
                raft.add_learner(*id, info.clone(), true).await.map_err(failed)?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false)
                    .await
                    .map_err(failed)?;
            }
            MembershipChange::RemoveVoter { id } => {
                if !voters.contains(id) {
                    // A learner left over from an interrupted move goes too.
                    if self.node_info(group, *id).is_some() {
                        raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*id])), false)
                            .await
                            .map_err(failed)?;
                    }
                    return Ok(());
                }
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([*id])), false)
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }
}
