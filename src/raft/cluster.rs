//! The cluster's node list as replicated state, and where groups live.
//!
//! The node list is the membership of the meta group, a Raft group like
//! the lock groups (same log, same transport) whose id is the group count
//! and whose table stays empty: every node of the cluster is a member of
//! it, up to `META_VOTERS` as voters and the rest as learners, so every
//! node has the list in its own replica and reads it without a round trip.
//! `admin add-node` and `remove-node` change it once; each lock group's
//! leader then moves the group's voters to what [`Placement`] computes from
//! the list (`server::reconciler`).
//!
//! Invariants: every node computes the same placement from the same list;
//! a node whose meta group is not initialized (a fresh node not yet added)
//! uses the configured `initial_cluster` and never reconciles; the cached
//! placement is recomputed only when the meta membership's log id changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;

use super::membership::MembershipError;
use super::types::{LogId, NodeId, NodeInfo};
use super::Groups;
use crate::routing::{GroupId, Placement};

/// At most this many nodes vote in the meta group; the others learn it.
pub const META_VOTERS: usize = 5;

/// The cluster as this node knows it.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub placement: Placement,
    /// False while the list is only the configured one (meta not yet here).
    pub replicated: bool,
}

/// The cached cluster and the meta membership it was computed from.
#[derive(Default)]
pub(super) struct ClusterCache {
    from: Option<Option<LogId>>,
    cluster: Option<Arc<Cluster>>,
}

/// The nodes of the meta membership's last config, and its learners: during
/// a change that removes a voter, the removed node already reads itself out.
fn listed_nodes(stored: &super::types::StoredMembership) -> BTreeMap<NodeId, NodeInfo> {
    let membership = stored.membership();
    let last: BTreeSet<NodeId> = membership.get_joint_config().last().cloned().unwrap_or_default();
    let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
    membership
        .nodes()
        .filter(|(id, _)| last.contains(id) || learners.contains(id))
        .map(|(id, n)| (*id, n.clone()))
        .collect()
}

impl Groups {
    /// Whether node `id` answered a ping lately (this node counts as live).
    pub fn peer_live(&self, id: NodeId) -> bool {
        id == self.me || self.liveness.is_live(id, self.live_within)
    }

    /// The meta group's id: the one after the last lock group.
    pub fn meta_id(&self) -> GroupId {
        self.count()
    }

    /// The node list and the placement it gives.
    pub fn cluster(&self) -> Arc<Cluster> {
        let metrics = self.raft(self.meta_id()).metrics();
        let log_id = metrics.borrow_watched().membership_config.log_id().clone();
        let mut cache = self.cluster_cache.lock().expect("cluster cache");
        if let (Some(from), Some(cluster)) = (&cache.from, &cache.cluster) {
            if *from == log_id {
                return cluster.clone();
            }
        }
        let nodes = listed_nodes(&metrics.borrow_watched().membership_config);
        let replicated = !nodes.is_empty();
        let nodes = if replicated { nodes } else { self.configured.clone() };
        for (id, info) in &nodes {
            if *id != self.me {
                self.router().learn(*id, &info.peer_addr);
            }
        }
        let ids: Vec<NodeId> = nodes.keys().copied().collect();
        let placement = Placement::new(self.count(), &ids, self.factor);
        let cluster = Arc::new(Cluster { nodes, placement, replicated });
        *cache = ClusterCache { from: Some(log_id), cluster: Some(cluster.clone()) };
        cluster
    }

    /// Whether this node holds a replica (voter or learner) of `group`: its
    /// membership lists it, and no leader said it removed this node from
    /// that membership (`mark_departed`, kept in the log store across restarts).
    pub fn hosts(&self, group: GroupId) -> bool {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        let listed = m.membership_config.membership().get_node(&self.me).is_some();
        listed && self.departed.get(&group).is_none_or(|at| *at != *m.membership_config.log_id())
    }

    /// Records that a leader removed this node from `group`: the membership
    /// this replica has (the joint one) is the last it will receive, until
    /// a leader adds it again (a newer membership).
    pub fn mark_departed(&self, group: GroupId) {
        let metrics = self.raft(group).metrics();
        let at = metrics.borrow_watched().membership_config.log_id().clone();
        tracing::info!(group, "this node's replica was removed from the group");
        if let Err(err) = self.logs[group as usize].set_departed(&at) {
            tracing::warn!(group, error = %err, "cannot record the removal; a restart will show the group as held");
        }
        self.departed.insert(group, at);
    }

    /// Where to send work for `group`: its leader as this node's replica
    /// sees it; for a group it holds no replica of, the live peer that says
    /// it leads it, else a live replica (which names the leader).
    pub fn route(&self, group: GroupId) -> Option<NodeId> {
        if self.hosts(group) {
            return self.view(group).leader;
        }
        let live = self.live_within;
        self.liveness.claimed_leader(group, live).or_else(|| {
            let cluster = self.cluster();
            cluster.placement.replicas(group).iter().copied().find(|n| self.liveness.is_live(*n, live))
        })
    }

    /// The members to initialize the meta group with on a new cluster: the
    /// configured voters, and the members of group 0 when this node's data
    /// predates the meta group (so nodes added since stay in the list).
    pub(super) fn meta_seed(&self) -> BTreeMap<NodeId, NodeInfo> {
        let mut nodes = self.configured.clone();
        nodes.extend(self.members(0));
        nodes
    }

    /// Adds `id` to the node list (this node leads the meta group: see
    /// `change_membership`): a
    /// learner that catches up, then a voter while there are fewer than
    /// [`META_VOTERS`]. Idempotent.
    pub(super) async fn add_cluster_node(&self, id: NodeId, info: NodeInfo) -> Result<(), MembershipError> {
        let meta = self.meta_id();
        let raft = self.raft(meta);
        if self.node_info(meta, id).is_none() {
            raft.add_learner(id, info, true).await.map_err(super::membership::failed)?;
        }
        let voters: BTreeSet<NodeId> = self.voter_ids(meta).into_iter().collect();
        if voters.len() < META_VOTERS && !voters.contains(&id) {
            let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            raft.change_membership(add, false).await.map_err(super::membership::failed)?;
        }
        Ok(())
    }

    /// Removes `id` from the node list (this node leads the meta group),
    /// voter or learner; promotes a learner if voters fall below
    /// [`META_VOTERS`]. Idempotent.
    pub(super) async fn remove_cluster_node(&self, id: NodeId) -> Result<(), MembershipError> {
        let meta = self.meta_id();
        let raft = self.raft(meta);
        let voters: BTreeSet<NodeId> = self.voter_ids(meta).into_iter().collect();
        let change = if voters.contains(&id) {
            let learner = self.members(meta).into_iter().map(|(n, _)| n).find(|n| !voters.contains(n) && *n != id);
            let mut next: BTreeSet<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
            next.extend(learner);
            ChangeMembers::ReplaceAllVoters(next)
        } else if self.node_info(meta, id).is_some() {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Ok(());
        };
        raft.change_membership(change, false).await.map_err(super::membership::failed)?;
        Ok(())
    }
}
