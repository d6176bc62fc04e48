//! The cluster's node list as this node's meta replica holds it, and the
//! placement it gives.
//!
//! Invariants: every node computes the same placement from the same list;
//! a node whose meta group is not initialized (a fresh node not yet added)
//! uses the configured `initial_cluster` and never reconciles
//! (`replicated` is false); during a change that removes a voter of the
//! meta group, the removed node already reads itself out of the list.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{NodeId, NodeInfo, StoredMembership};
use crate::routing::Placement;

/// The cluster as this node knows it.
#[derive(Debug)]
pub struct NodeList {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub placement: Placement,
    /// False while the list is only the configured one (meta not yet here).
    pub replicated: bool,
}

impl NodeList {
    /// The list the meta membership `meta` gives (the configured voters
    /// `configured` while it gives none), placing `groups` groups on
    /// `factor` nodes each.
    pub fn new(meta: &StoredMembership, configured: &BTreeMap<NodeId, NodeInfo>, groups: u32, factor: usize) -> Self {
        let listed = listed_nodes(meta);
        let replicated = !listed.is_empty();
        let nodes = if replicated { listed } else { configured.clone() };
        let ids: Vec<NodeId> = nodes.keys().copied().collect();
        Self { placement: Placement::new(groups, &ids, factor), nodes, replicated }
    }
}

/// The nodes of the meta membership's last config, and its learners.
fn listed_nodes(stored: &StoredMembership) -> BTreeMap<NodeId, NodeInfo> {
    let membership = stored.membership();
    let last: BTreeSet<NodeId> = membership.get_joint_config().last().cloned().unwrap_or_default();
    let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
    membership
        .nodes()
        .filter(|(id, _)| last.contains(id) || learners.contains(id))
        .map(|(id, n)| (*id, n.clone()))
        .collect()
}
