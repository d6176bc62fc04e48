//! Changing the members of a group safely: a new node joins as a learner,
//! catches up, and only then becomes a voter; a node leaves by one
//! membership change (openraft's joint consensus keeps every step safe).
//! The node list is the meta group's membership, changed the same way.
//!
//! Invariants: changes run on the group leader only; they are idempotent
//! (adding a voter twice or removing an absent one succeeds without a new
//! entry), so an operator can simply retry a partly applied change; the
//! meta group has at most [`META_VOTERS`] voters, the other nodes learn it.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::errors::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::cluster::Cluster;
use super::types::{NodeId, NodeInfo, TypeConfig};
use crate::codec::encode;
use crate::peer::{Kind, Method};
use crate::routing::GroupId;

/// At most this many nodes vote in the meta group; the others learn it.
pub const META_VOTERS: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Makes `id` a voter (a learner first if it is not a member yet): the
    /// reconciler asks for it once the learner has caught up.
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
    /// Adds `id` as a learner, which catches up in the background (the
    /// change does not wait for it).
    AddLearner {
        id: NodeId,
        info: NodeInfo,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("this node does not lead the group")]
    NotLeader(Option<NodeInfo>),
    #[error("membership change failed: {0}")]
    Failed(String),
}

fn failed(err: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> MembershipError {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader(f.leader_node),
        other => MembershipError::Failed(other.to_string()),
    }
}

/// `NotLeader` (naming the leader) unless this node leads `group`.
fn check_leads(cluster: &Cluster, group: GroupId) -> Result<(), MembershipError> {
    let view = cluster.groups().view(group);
    if view.is_leader {
        return Ok(());
    }
    let leader = view.leader.and_then(|id| cluster.groups().node_info(group, id));
    Err(MembershipError::NotLeader(leader))
}

/// Applies `change` to `group`; this node must lead it (but for `Left`,
/// which only tells this node it left).
pub async fn change(cluster: &Cluster, group: GroupId, change: &MembershipChange) -> Result<(), MembershipError> {
    if let MembershipChange::Left { id } = change {
        if *id == cluster.me() {
            cluster.mark_departed(group);
        }
        return Ok(());
    }
    check_leads(cluster, group)?;
    let groups = cluster.groups();
    groups.wake_to_write(group).await;
    let raft = groups.raft(group);
    let voters = groups.voter_ids(group);
    match change {
        MembershipChange::AddNode { id, info } => return add_node(cluster, *id, info.clone()).await,
        MembershipChange::RemoveNode { id } => {
            remove_node(cluster, *id).await?;
            // A removed node that still runs learns it here, so it stops
            // answering for a cluster it is no longer in.
            tell_removed(cluster, group, *id).await;
            return Ok(());
        }
        MembershipChange::Left { .. } => {}
        MembershipChange::AddLearner { id, info } => {
            if groups.node_info(group, *id).is_none() {
                raft.add_learner(*id, info.clone(), false).await.map_err(failed)?;
            }
        }
        MembershipChange::AddVoter { id, info } => {
            if voters.contains(id) {
                return Ok(());
            }
            if groups.node_info(group, *id).is_none() {
                raft.add_learner(*id, info.clone(), false).await.map_err(failed)?;
            }
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false).await.map_err(failed)?;
        }
        MembershipChange::RemoveVoter { id } => {
            if !voters.contains(id) {
                // A learner left over from an interrupted move goes too.
                if groups.node_info(group, *id).is_some() {
                    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*id])), false)
                        .await
                        .map_err(failed)?;
                }
                return Ok(());
            }
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([*id])), false).await.map_err(failed)?;
        }
    }
    Ok(())
}

/// Adds `id` to the node list (this node leads the meta group): a learner
/// that catches up, then a voter while there are fewer than
/// [`META_VOTERS`]. Idempotent.
async fn add_node(cluster: &Cluster, id: NodeId, info: NodeInfo) -> Result<(), MembershipError> {
    let groups = cluster.groups();
    let meta = groups.meta_id();
    let raft = groups.raft(meta);
    if groups.node_info(meta, id).is_none() {
        raft.add_learner(id, info, true).await.map_err(failed)?;
    }
    let voters: BTreeSet<NodeId> = groups.voter_ids(meta).into_iter().collect();
    if voters.len() < META_VOTERS && !voters.contains(&id) {
        let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        raft.change_membership(add, false).await.map_err(failed)?;
    }
    Ok(())
}

/// Removes `id` from the node list (this node leads the meta group), voter
/// or learner; promotes a learner if voters fall below [`META_VOTERS`].
/// Idempotent.
async fn remove_node(cluster: &Cluster, id: NodeId) -> Result<(), MembershipError> {
    let groups = cluster.groups();
    let meta = groups.meta_id();
    let voters: BTreeSet<NodeId> = groups.voter_ids(meta).into_iter().collect();
    let change = if voters.contains(&id) {
        let learner = groups.members(meta).into_iter().map(|(n, _)| n).find(|n| !voters.contains(n) && *n != id);
        let mut next: BTreeSet<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
        next.extend(learner);
        ChangeMembers::ReplaceAllVoters(next)
    } else if groups.node_info(meta, id).is_some() {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    } else {
        return Ok(());
    };
    groups.raft(meta).change_membership(change, false).await.map_err(failed)?;
    Ok(())
}

/// Tells a voter this node (`group`'s leader) removed that it left (best
/// effort: a dead one learns nothing, and needs not). It travels as a
/// forwarded membership change, which the receiver applies locally.
pub async fn tell_removed(cluster: &Cluster, group: GroupId, id: NodeId) {
    if id == cluster.me() {
        return cluster.mark_departed(group);
    }
    let body = encode(&MembershipChange::Left { id });
    let sent = cluster.router().links().call(id, Method::Membership, group, &body, Duration::from_secs(2)).await;
    if !matches!(sent, Ok(ref frame) if frame.kind == Kind::Reply) {
        tracing::debug!(group, node = id, "the removed voter did not hear of it");
    }
}
