//! The reconciler: moves each group's voters to what placement says.
//!
//! After `admin add-node` or `remove-node` changed the node list (the meta
//! group), the placement of some groups changes. Each group's leader then
//! takes one step per round towards it: add a missing node as a learner;
//! once that learner has caught up, make it a voter; else hand leadership
//! away if the leader itself must go; else remove one voter placement no
//! longer names; else drop a learner left over from an interrupted move.
//! A round with nothing it can do says what it waits for (a learner
//! catching up, a target node that does not answer), and `status` shows it.
//!
//! Invariants: only a group's leader acts, and only once the node list it
//! reads is replicated (its meta group is initialized); a group gains its
//! new voter before losing an old one, so it never has fewer voters than
//! its target during a move; a node that does not answer pings is not
//! added, and while one is missing no voter is removed (its replica is
//! built when it is back); every step is recomputed from the group's
//! membership each round, is idempotent and short (one membership entry:
//! no step waits for a learner to catch up), so a crash, a leader change or
//! a dead node at any point costs at most a round, never a stuck step; at
//! most `MAX_MOVING` groups move at once per node, and each step gives up
//! after `STEP_TIMEOUT`.

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
/// A step is one membership entry: it commits in milliseconds when the
/// group has a quorum, and is retried by the next round when it does not.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// A learner this many entries or fewer behind the leader has caught up.
pub const CAUGHT_UP_LAG: u64 = 1000;

/// One step of a group towards its placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add this node as a learner; it catches up in the background.
    Learn(NodeId),
    /// This learner has caught up: make it a voter.
    Promote(NodeId),
    /// The leader must go: hand leadership to this target voter first.
    Handoff(NodeId),
    /// Remove this voter (or leftover learner).
    Remove(NodeId),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Learn(id) => write!(f, "adding node {id} as a learner"),
            Step::Promote(id) => write!(f, "making learner {id} a voter"),
            Step::Handoff(id) => write!(f, "handing leadership to node {id}"),
            Step::Remove(id) => write!(f, "removing node {id}"),
        }
    }
}

/// Why a group that is not yet placed takes no step this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// A learner is still catching up.
    CatchUp(NodeId),
    /// A target node does not answer pings.
    Dead(NodeId),
    /// The leader must go but no target voter answers pings.
    NoHeir,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::CatchUp(id) => write!(f, "learner {id} to catch up"),
            Waiting::Dead(id) => write!(f, "node {id} to answer pings"),
            Waiting::NoHeir => write!(f, "a live target voter to hand leadership to"),
        }
    }
}

/// A group as its leader sees it, for [`next_step`].
pub struct GroupSight<'a> {
    pub me: NodeId,
    pub voters: &'a [NodeId],
    pub learners: &'a [NodeId],
    pub target: &'a [NodeId],
    pub preferred: Option<NodeId>,
}

/// The next step for a group towards its target, or what it waits for
/// (`Ok(None)`: placed); `live` says which nodes answer pings, `caught_up`
/// which learners have caught up.
pub fn next_step(
    g: &GroupSight<'_>,
    live: impl Fn(NodeId) -> bool,
    caught_up: impl Fn(NodeId) -> bool,
) -> Result<Option<Step>, Waiting> {
    if g.target.is_empty() {
        return Ok(None);
    }
    let missing: Vec<NodeId> = g.target.iter().copied().filter(|t| !g.voters.contains(t)).collect();
    if let Some(first) = missing.first() {
        // A dead target is waited for rather than the group shrunk meanwhile.
        let step = missing.iter().find_map(|&m| match g.learners.contains(&m) {
            true => caught_up(m).then_some(Step::Promote(m)),
            false => live(m).then_some(Step::Learn(m)),
        });
        let learning = missing.iter().find(|m| g.learners.contains(m));
        return match (step, learning) {
            (Some(step), _) => Ok(Some(step)),
            (None, Some(&l)) => Err(Waiting::CatchUp(l)),
            (None, None) => Err(Waiting::Dead(*first)),
        };
    }
    let extra: Vec<NodeId> = g.voters.iter().copied().filter(|v| !g.target.contains(v)).collect();
    if let Some(other) = extra.iter().find(|v| **v != g.me) {
        return Ok(Some(Step::Remove(*other)));
    }
    if extra.contains(&g.me) {
        let to = g.preferred.filter(|p| g.voters.contains(p) && *p != g.me && live(*p));
        let to = to.or_else(|| g.target.iter().copied().find(|t| g.voters.contains(t) && live(*t)));
        return to.map(|to| Some(Step::Handoff(to))).ok_or(Waiting::NoHeir);
    }
    Ok(g.learners.iter().copied().find(|l| !g.target.contains(l)).map(Step::Remove))
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
    let mut steps = Vec::new();
    for group in 0..cluster.groups().count() {
        match step_of(cluster, &nodes, group) {
            Ok(Some(step)) => {
                cluster.set_moving(group, Some(step.to_string()));
                steps.push((group, step));
            }
            Ok(None) => cluster.set_moving(group, None),
            Err(waiting) => cluster.set_moving(group, Some(format!("waiting for {waiting}"))),
        }
    }
    let taken = steps.len();
    futures::stream::iter(steps)
        .for_each_concurrent(MAX_MOVING, |(group, step)| take(cluster, &nodes, group, step))
        .await;
    taken
}

fn step_of(cluster: &Cluster, nodes: &NodeList, group: GroupId) -> Result<Option<Step>, Waiting> {
    let groups = cluster.groups();
    if !groups.view(group).is_leader {
        return Ok(None);
    }
    let (voters, learners) = (groups.voter_ids(group), groups.learner_ids(group));
    let sight = GroupSight {
        me: cluster.me(),
        voters: &voters,
        learners: &learners,
        target: nodes.placement.replicas(group),
        preferred: nodes.placement.preferred_leader(group),
    };
    let caught_up = |n| groups.follower(group, n).is_some_and(|p| p.lag <= CAUGHT_UP_LAG);
    next_step(&sight, |n| cluster.peer_live(n), caught_up)
}

async fn take(cluster: &Cluster, nodes: &NodeList, group: GroupId, step: Step) {
    tracing::info!(group, ?step, "moving the group towards its placement");
    let info = |id: &NodeId| nodes.nodes.get(id).cloned();
    let change = match &step {
        Step::Learn(id) | Step::Promote(id) => match (info(id), &step) {
            (Some(info), Step::Learn(_)) => MembershipChange::AddLearner { id: *id, info },
            (Some(info), _) => MembershipChange::AddVoter { id: *id, info },
            (None, _) => return tracing::warn!(group, node = id, "a placement target is not in the node list"),
        },
        Step::Remove(id) => MembershipChange::RemoveVoter { id: *id },
        Step::Handoff(to) => {
            if let Err(why) = cluster.groups().transfer_leader(group, *to).await {
                tracing::warn!(group, ?step, %why, "a leadership hand-off did not start; the next round retries");
            }
            return;
        }
    };
    let done = match tokio::time::timeout(STEP_TIMEOUT, membership::change(cluster, group, &change)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer in {STEP_TIMEOUT:?}")),
    };
    match (done, &step) {
        (Ok(()), Step::Remove(id)) => membership::tell_removed(cluster, group, *id).await,
        (Ok(()), _) => {}
        (Err(why), _) => tracing::warn!(group, ?step, %why, "a placement step did not finish; the next round retries"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(me: NodeId, voters: &[NodeId], learners: &[NodeId], target: &[NodeId]) -> Result<Option<Step>, Waiting> {
        let sight = GroupSight { me, voters, learners, target, preferred: target.first().copied() };
        // Node 9 is dead; learner 7 lags.
        next_step(&sight, |n| n != 9, |n| n != 7)
    }

    #[test]
    fn each_step_towards_the_placement() {
        type Case = (
            &'static str,
            NodeId,
            &'static [NodeId],
            &'static [NodeId],
            &'static [NodeId],
            Result<Option<Step>, Waiting>,
        );
        let cases: &[Case] = &[
            ("placed: nothing to do", 1, &[1, 2, 3], &[], &[1, 2, 3], Ok(None)),
            ("a new node joins as a learner", 1, &[1, 2, 3], &[], &[1, 2, 4], Ok(Some(Step::Learn(4)))),
            ("a learner caught up is made a voter", 1, &[1, 2, 3], &[4], &[1, 2, 4], Ok(Some(Step::Promote(4)))),
            ("a lagging learner is waited for", 1, &[1, 2, 3], &[7], &[1, 2, 7], Err(Waiting::CatchUp(7))),
            ("then the old voter goes", 1, &[1, 2, 3, 4], &[], &[1, 2, 4], Ok(Some(Step::Remove(3)))),
            ("a dead target is not added", 1, &[1, 2, 3], &[], &[1, 2, 9], Err(Waiting::Dead(9))),
            ("a leader that must go hands off", 1, &[1, 2, 3, 4], &[], &[2, 3, 4], Ok(Some(Step::Handoff(2)))),
            ("other extras go before the leader", 1, &[1, 2, 3, 4, 5], &[], &[2, 3, 4], Ok(Some(Step::Remove(5)))),
            ("no live heir: wait", 1, &[1, 9], &[], &[9], Err(Waiting::NoHeir)),
            ("a leftover learner goes", 1, &[1, 2, 3], &[5], &[1, 2, 3], Ok(Some(Step::Remove(5)))),
            ("no placement: nothing", 1, &[1, 2, 3], &[], &[], Ok(None)),
        ];
        for (what, me, voters, learners, target, want) in cases {
            assert_eq!(step(*me, voters, learners, target), *want, "{what}");
        }
    }

    #[test]
    fn a_dead_node_is_removed_once_its_replacement_is_in() {
        assert_eq!(step(1, &[1, 2, 9], &[], &[1, 2, 4]), Ok(Some(Step::Learn(4))));
        assert_eq!(step(1, &[1, 2, 9], &[4], &[1, 2, 4]), Ok(Some(Step::Promote(4))));
        assert_eq!(step(1, &[1, 2, 4, 9], &[], &[1, 2, 4]), Ok(Some(Step::Remove(9))));
    }
}
