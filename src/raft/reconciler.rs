//! The reconciler: moves each group's voters to what placement says.
//!
//! After `admin add-node` or `remove-node` changed the node list (the meta
//! group), the placement of some groups changes. Each group's leader then
//! takes one step per round towards it: add a missing voter (a learner that
//! catches up, then a voter), else hand leadership away if the leader
//! itself must go, else remove one voter placement no longer names, else
//! drop a learner left over from an interrupted move.
//!
//! Invariants: only a group's leader acts, and only once the node list it
//! reads is replicated (its meta group is initialized); a group gains its
//! new voter before losing an old one, so it never has fewer voters than
//! its target during a move; a node that does not answer pings is not
//! added, and while one is missing no voter is removed (its replica is
//! built when it is back); every step is recomputed
//! from the group's membership each round and is idempotent, so a crash at
//! any step resumes where it stopped; at most `MAX_MOVING` groups move at
//! once per node, and each step gives up after `STEP_TIMEOUT`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::cluster::Cluster;
use super::membership::{self, MembershipChange};
use super::nodes::NodeList;
use super::types::NodeId;
use crate::routing::GroupId;

const MAX_MOVING: usize = 4;
/// A learner's catch-up (a snapshot, a long log) may take this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// One step of a group towards its placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add this node as a learner, let it catch up, make it a voter.
    Add(NodeId),
    /// The leader must go: hand leadership to this target voter first.
    Handoff(NodeId),
    /// Remove this voter (or leftover learner).
    Remove(NodeId),
}

/// The next step for a group led by `me` with `voters` and `learners`,
/// towards `target`; `live` says which nodes answer pings.
pub fn next_step(
    me: NodeId,
    voters: &[NodeId],
    learners: &[NodeId],
    target: &[NodeId],
    preferred: Option<NodeId>,
    live: impl Fn(NodeId) -> bool,
) -> Option<Step> {
    if target.is_empty() {
        return None;
    }
    let missing: Vec<NodeId> = target.iter().copied().filter(|t| !voters.contains(t)).collect();
    if !missing.is_empty() {
        // A dead target is waited for rather than the group shrunk meanwhile.
        return missing.into_iter().find(|m| live(*m)).map(Step::Add);
    }
    let extra: Vec<NodeId> = voters.iter().copied().filter(|v| !target.contains(v)).collect();
    if extra.iter().any(|v| *v != me) {
        return extra.into_iter().find(|v| *v != me).map(Step::Remove);
    }
    if extra.contains(&me) {
        let to = preferred.filter(|p| voters.contains(p) && *p != me && live(*p));
        let to = to.or_else(|| target.iter().copied().find(|t| voters.contains(t) && live(*t)));
        return to.map(Step::Handoff);
    }
    learners.iter().copied().find(|l| !target.contains(l)).map(Step::Remove)
}

/// Runs a round each `every` until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    while crate::rounds::next(every, &mut shutdown).await {
        reconcile_once(&cluster).await;
    }
}

/// One round: the steps this node's led groups take; returns how many.
pub async fn reconcile_once(cluster: &Cluster) -> usize {
    let nodes = cluster.nodes();
    if !nodes.replicated {
        return 0;
    }
    let count = cluster.groups().count();
    let steps: Vec<(GroupId, Step)> = (0..count).filter_map(|g| step_of(cluster, &nodes, g).map(|s| (g, s))).collect();
    let taken = steps.len();
    futures::stream::iter(steps)
        .for_each_concurrent(MAX_MOVING, |(group, step)| take(cluster, &nodes, group, step))
        .await;
    taken
}

fn step_of(cluster: &Cluster, nodes: &NodeList, group: GroupId) -> Option<Step> {
    let groups = cluster.groups();
    if !groups.view(group).is_leader {
        return None;
    }
    let target = nodes.placement.replicas(group);
    let preferred = nodes.placement.preferred_leader(group);
    let (voters, learners) = (groups.voter_ids(group), groups.learner_ids(group));
    next_step(cluster.me(), &voters, &learners, target, preferred, |n| cluster.peer_live(n))
}

async fn take(cluster: &Cluster, nodes: &NodeList, group: GroupId, step: Step) {
    tracing::info!(group, ?step, "moving the group towards its placement");
    let done = match &step {
        Step::Add(id) => match nodes.nodes.get(id) {
            Some(info) => {
                let change = MembershipChange::AddVoter { id: *id, info: info.clone() };
                timed(membership::change(cluster, group, &change)).await
            }
            None => Err("the node is not in the node list".to_owned()),
        },
        Step::Remove(id) => {
            let removed = timed(membership::change(cluster, group, &MembershipChange::RemoveVoter { id: *id })).await;
            if removed.is_ok() {
                membership::tell_removed(cluster, group, *id).await;
            }
            removed
        }
        Step::Handoff(to) => cluster.groups().transfer_leader(group, *to).await,
    };
    if let Err(why) = done {
        tracing::warn!(group, ?step, %why, "a placement step did not finish; the next round retries");
    }
}

async fn timed(
    change: impl std::future::Future<Output = Result<(), membership::MembershipError>>,
) -> Result<(), String> {
    match tokio::time::timeout(STEP_TIMEOUT, change).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer in {STEP_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(me: NodeId, voters: &[NodeId], learners: &[NodeId], target: &[NodeId]) -> Option<Step> {
        next_step(me, voters, learners, target, target.first().copied(), |n| n != 9)
    }

    #[test]
    fn each_step_towards_the_placement() {
        let cases: &[(&str, NodeId, &[NodeId], &[NodeId], &[NodeId], Option<Step>)] = &[
            ("placed: nothing to do", 1, &[1, 2, 3], &[], &[1, 2, 3], None),
            ("a new node is added first", 1, &[1, 2, 3], &[], &[1, 2, 4], Some(Step::Add(4))),
            ("a learner caught up is made a voter", 1, &[1, 2, 3], &[4], &[1, 2, 4], Some(Step::Add(4))),
            ("then the old voter goes", 1, &[1, 2, 3, 4], &[], &[1, 2, 4], Some(Step::Remove(3))),
            ("a dead target is not added", 1, &[1, 2, 3], &[], &[1, 2, 9], None),
            ("but the old voter stays meanwhile", 1, &[1, 2, 3], &[], &[1, 2, 9], None),
            ("a leader that must go hands off", 1, &[1, 2, 3, 4], &[], &[2, 3, 4], Some(Step::Handoff(2))),
            ("other extras go before the leader", 1, &[1, 2, 3, 4, 5], &[], &[2, 3, 4], Some(Step::Remove(5))),
            ("a leftover learner goes", 1, &[1, 2, 3], &[5], &[1, 2, 3], Some(Step::Remove(5))),
            ("no placement: nothing", 1, &[1, 2, 3], &[], &[], None),
        ];
        for (what, me, voters, learners, target, want) in cases {
            assert_eq!(step(*me, voters, learners, target), *want, "{what}");
        }
    }

    #[test]
    fn a_dead_node_is_removed_once_its_replacement_is_in() {
        assert_eq!(step(1, &[1, 2, 9], &[], &[1, 2, 4]), Some(Step::Add(4)));
        assert_eq!(step(1, &[1, 2, 4, 9], &[], &[1, 2, 4]), Some(Step::Remove(9)));
    }
}
