//! The leader balancer: moves each group's leadership to its preferred
//! node (`Placement::preferred_leader`) when that node is healthy.
//!
//! Invariants: only the current leader acts; it hands leadership only to a
//! preferred node that acknowledged a recent heartbeat and has the leader's
//! whole log, so a transfer never lands on a dead or lagging node; at most
//! `MAX_TRANSFERS_PER_ROUND` transfers start per round, so a node that comes
//! back does not cause a storm of elections.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::cluster::Cluster;
use super::types::NodeId;

const MAX_TRANSFERS_PER_ROUND: usize = 8;

/// Runs until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, heartbeat: Duration, mut shutdown: watch::Receiver<bool>) {
    let round = heartbeat * 10;
    while crate::rounds::next(round, &mut shutdown).await {
        balance_once(&cluster, heartbeat * 3).await;
    }
}

/// One round: returns the number of transfers started.
/// The preferred leaders follow the cluster's placement; a group whose
/// voters do not yet include its preferred node (it is being moved) stays.
pub async fn balance_once(cluster: &Cluster, max_age: Duration) -> usize {
    let groups = cluster.groups();
    let mut started = 0;
    for group in 0..groups.count() {
        if started == MAX_TRANSFERS_PER_ROUND {
            break;
        }
        if !groups.view(group).is_leader {
            continue;
        }
        let voters: Vec<NodeId> = groups.voter_ids(group);
        let Some(preferred) = cluster.nodes().placement.preferred_leader(group).filter(|p| voters.contains(p)) else {
            continue;
        };
        let eligible = !cluster.peer_draining(preferred) && cluster.follower_healthy(group, preferred, max_age);
        if preferred == groups.me() || !eligible {
            continue;
        }
        if groups.transfer_leader(group, preferred).await.is_ok() {
            tracing::debug!(group, to = preferred, "moving leadership to the preferred node");
            started += 1;
        }
    }
    started
}
