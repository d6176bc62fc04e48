//! Bootstrap of a new cluster.
//!
//! Invariants: it happens once, on a new cluster: every configured node
//! initializes the meta group with the configured voters and each lock
//! group it holds by placement with that group's replicas (the same
//! membership on every node, which openraft allows). A node whose meta
//! group is initialized never initializes anything again. The preferred
//! leader of each group calls an election at once so leaders start out
//! spread evenly.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::groups::GroupsError;
use super::types::{NodeId, NodeInfo};

/// On a new cluster, initializes the meta group and the lock groups this
/// node holds; on a node that has been part of a cluster, nothing.
pub async fn bootstrap(cluster: &Cluster) -> Result<(), GroupsError> {
    let groups = cluster.groups();
    let meta = groups.meta_id();
    if groups.initialized(meta).await? {
        return Ok(());
    }
    let seed = meta_seed(cluster);
    groups.initialize(meta, seed.clone()).await;
    if seed.keys().next() == Some(&cluster.me()) {
        groups.elect(meta).await;
    }
    let nodes = cluster.nodes();
    for group in 0..groups.count() {
        let replicas = nodes.placement.replicas(group);
        if !replicas.contains(&cluster.me()) || groups.initialized(group).await? {
            continue;
        }
        let members: BTreeMap<NodeId, NodeInfo> =
            replicas.iter().filter_map(|id| seed.get(id).map(|n| (*id, n.clone()))).collect();
        groups.initialize(group, members).await;
        if nodes.placement.preferred_leader(group) == Some(cluster.me()) {
            groups.elect(group).await;
        }
    }
    Ok(())
}

/// The members to initialize the meta group with on a new cluster: the
/// configured voters, and the members of group 0 when this node's data
/// predates the meta group (so nodes added since stay in the list).
fn meta_seed(cluster: &Cluster) -> BTreeMap<NodeId, NodeInfo> {
    let mut nodes = cluster.configured().clone();
    nodes.extend(cluster.groups().members(0));
    nodes
}
