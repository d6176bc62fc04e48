//! A node's view of the cluster: its groups and the members it knows.
//!
//! Built once here; `Admin.Status` and `GET /v1/admin/status` encode it.

use crate::raft::{Groups, NodeId};
use crate::routing::GroupId;

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
    pub voters: Vec<NodeId>,
}

/// The node's status.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub groups: Vec<GroupRow>,
    /// The voters of the cluster (group 0's membership): id, client and
    /// peer address.
    pub members: Vec<(NodeId, String, String)>,
    pub wal_syncs: u64,
    pub wal_synced_writes: u64,
}

impl NodeStatus {
    pub fn of(groups: &Groups, (wal_syncs, wal_synced_writes): (u64, u64)) -> Self {
        let rows = (0..groups.count())
            .map(|g| {
                let view = groups.view(g);
                GroupRow {
                    group: g,
                    leader: view.leader,
                    term: view.term,
                    last_log_index: view.last_log_index,
                    applied_index: view.applied_index,
                    is_leader: view.is_leader,
                    locks: groups.state(g).read(|t| t.len() as u64),
                    voters: groups.voter_ids(g),
                }
            })
            .collect();
        let members = groups.members(0).into_iter().map(|(id, n)| (id, n.client_addr, n.peer_addr)).collect();
        Self { node_id: groups.me(), groups: rows, members, wal_syncs, wal_synced_writes }
    }
}
