//! Status (admin): this node's view of the cluster, its groups and the
//! members it knows. Built once here; `Admin.Status` and
//! `GET /v1/admin/status` encode it.

use crate::raft::{Cluster, NodeId};
use crate::routing::GroupId;
use crate::service::LockService;

/// One group as this node sees it.
#[derive(Clone, Debug)]
pub struct GroupRow {
    pub group: GroupId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub is_leader: bool,
    /// Locks in this node's copy of the group's table.
    pub locks: u64,
    /// As this node's replica knows them; placement's for a group not here.
    pub voters: Vec<NodeId>,
    /// Where placement puts the group (differs while it moves).
    pub target: Vec<NodeId>,
    pub hosted: bool,
    /// On its leader, while it moves: the step taken or what it waits for.
    pub moving: Option<String>,
}

/// The node's status.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub groups: Vec<GroupRow>,
    /// The cluster's node list (the meta group): id, client and peer address.
    pub members: Vec<(NodeId, String, String)>,
    pub wal_syncs: u64,
    pub wal_synced_writes: u64,
    /// The cluster removed this node: it serves nothing and is safe to stop.
    pub removed: bool,
}

impl NodeStatus {
    pub fn of(svc: &LockService) -> Self {
        let cluster = svc.cluster();
        let nodes = cluster.nodes();
        let rows = (0..cluster.groups().count()).map(|g| row(cluster, g, nodes.placement.replicas(g))).collect();
        let members = nodes.nodes.iter().map(|(id, n)| (*id, n.client_addr.clone(), n.peer_addr.clone())).collect();
        let (wal_syncs, wal_synced_writes) = svc.syncer_stats();
        let removed = cluster.removed();
        Self { node_id: cluster.me(), groups: rows, members, wal_syncs, wal_synced_writes, removed }
    }
}

fn row(cluster: &Cluster, group: GroupId, target: &[NodeId]) -> GroupRow {
    let groups = cluster.groups();
    let view = groups.view(group);
    let hosted = cluster.hosts(group);
    GroupRow {
        group,
        leader: if hosted { view.leader } else { cluster.route(group).filter(|n| target.contains(n)) },
        term: view.term,
        last_log_index: view.last_log_index,
        applied_index: view.applied_index,
        is_leader: view.is_leader,
        locks: groups.state(group).read(|t| t.len() as u64),
        voters: if hosted { groups.voter_ids(group) } else { target.to_vec() },
        target: target.to_vec(),
        hosted,
        moving: cluster.moving(group),
    }
}
