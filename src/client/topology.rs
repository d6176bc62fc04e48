//! The client's cached view of the cluster: group count, node addresses and
//! the leader of each group.
//!
//! Invariants: the view is a hint, never trusted for safety — a stale leader
//! costs one forwarded hop or one `NotLeader` answer, after which the entry
//! is corrected; it is replaced wholesale from any node's `Status`.

use std::collections::HashMap;

use crate::proto::v1::StatusResponse;
use crate::routing::{group_of, GroupId};

#[derive(Clone, Debug, Default)]
pub struct Topology {
    pub groups: u32,
    /// Node id → client address.
    pub nodes: HashMap<u64, String>,
    /// Leader node id of each group; 0 when unknown.
    pub leaders: Vec<u64>,
}

impl Topology {
    pub fn from_status(status: &StatusResponse) -> Self {
        Self {
            groups: status.groups,
            nodes: status.nodes.iter().map(|n| (n.node_id, n.client_addr.clone())).collect(),
            leaders: status.group_status.iter().map(|g| g.leader_id).collect(),
        }
    }

    pub fn group(&self, name: &str) -> GroupId {
        group_of(name.as_bytes(), self.groups)
    }

    /// The client address of the leader of `name`'s group, if known.
    pub fn leader_addr(&self, name: &str) -> Option<&str> {
        let leader = *self.leaders.get(self.group(name) as usize)?;
        self.nodes.get(&leader).map(String::as_str)
    }

    /// Records that `addr` leads `name`'s group (from a `NotLeader` answer).
    pub fn set_leader_addr(&mut self, name: &str, addr: &str) {
        let group = self.group(name) as usize;
        let id = self.nodes.iter().find(|(_, a)| a.as_str() == addr).map(|(id, _)| *id);
        if let (Some(id), Some(slot)) = (id, self.leaders.get_mut(group)) {
            *slot = id;
        }
    }

    pub fn addrs(&self) -> impl Iterator<Item = &str> {
        self.nodes.values().map(String::as_str)
    }
}
