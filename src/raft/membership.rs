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
    AddVoter { id: NodeId, info: NodeInfo },
    RemoveVoter { id: NodeId },
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("this node does not lead the group")]
    NotLeader(Option<NodeInfo>),
    #[error("membership change failed: {0}")]
    Failed(String),
}

fn failed(err: RaftError<super::TypeConfig, ClientWriteError<super::TypeConfig>>) -> MembershipError {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader(f.leader_node),
        other => MembershipError::Failed(other.to_string()),
    }
}

impl Groups {
    /// The voters of `group` as this node knows them.
    pub fn voter_ids(&self, group: GroupId) -> Vec<NodeId> {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Applies `change` to `group`; this node must lead it.
    pub async fn change_membership(&self, group: GroupId, change: &MembershipChange) -> Result<(), MembershipError> {
        if !self.view(group).is_leader {
            let leader = self.view(group).leader.and_then(|id| self.node_info(group, id));
            return Err(MembershipError::NotLeader(leader));
        }
        let raft = self.raft(group);
        let voters = self.voter_ids(group);
        match change {
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
