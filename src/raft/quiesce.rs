//! Quiescing idle groups: an idle group stops its Raft timers.
//!
//! Every openraft group ticks (about five times per heartbeat interval) and
//! its leader heartbeats each follower. With hundreds of groups per node that
//! is most of an idle node's CPU. So (like TiKV's hibernate regions):
//! - a leader keeps its timers (heartbeats) only while the group had a write,
//!   a read or a leader change within `quiesce_after_ms`, or while a live
//!   follower lacks part of its log (heartbeats drive openraft's retries);
//! - a follower runs its election timer only when it needs one: it knows no
//!   leader, or the leader's node stopped answering pings (`liveness`). One
//!   ping per peer thus replaces the heartbeats of every group it leads.
//!
//! Invariants:
//! - Quiescing never touches safety: it only switches timers; writes
//!   replicate without ticks and reads use ReadIndex, which confirms
//!   leadership with its own round.
//! - A follower never ticks because of activity: with a quiet leader its
//!   election timer has long expired, and ticking would start an election.
//! - When a leader's node is dead, its first successor (`fallback_leader`
//!   among the other voters) wakes at once and the others one election
//!   timeout later, so they do not split the vote.
//! - Only a leader is woken by activity (`touch`); a leader or term change
//!   counts as activity. A quiet leader's lease lapses, and openraft refuses
//!   writes without one, so a woken leader confirms itself with a ReadIndex
//!   round (one heartbeat to a quorum) before its first write.
//! - A follower that receives a leadership transfer runs its election timer
//!   for two election timeouts (`wake_follower`) or until it sees a new
//!   leader or term: if the target declines, the leader has already stopped
//!   taking writes, and only an election gets the group a leader again.
//!
//! A node answers pings only while all its groups run: a group whose Raft
//! core stopped (a fatal storage error) makes the quiescer stop the whole
//! process (fail-stop, as etcd does on storage errors), so its followers
//! see a dead node and elect, instead of waiting on a live node's pings.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::cluster::Cluster;
use super::groups::GroupView;
use super::types::NodeId;
use crate::routing::{fallback_leader, GroupId};

/// The durations quiescing works with, all from the Raft config.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Idle time after which a leader stops heartbeating; zero never quiesces.
    pub quiet_after: Duration,
    /// A peer is live while a ping succeeded within this window.
    pub live_within: Duration,
    /// How long non-successor followers wait after the successor.
    pub stagger: Duration,
}

impl Timing {
    pub fn from_config(raft: &crate::config::RaftConfig) -> Self {
        let ms = Duration::from_millis;
        Self {
            quiet_after: ms(raft.quiesce_after_ms),
            live_within: super::liveness::live_within(raft),
            stagger: ms(raft.election_timeout_max_ms),
        }
    }
}

/// What one group looks like to this node right now.
#[derive(Clone, Copy, Debug)]
pub struct Sight {
    pub is_leader: bool,
    /// The leader this node follows (`None` when unknown or itself).
    pub leader: Option<NodeId>,
    /// Time since the last write, read or leader change here.
    pub idle: Duration,
    /// How long the leader's node has failed pings or said it does not
    /// lead the group (`None`: it answers, leading).
    pub leader_dead_for: Option<Duration>,
    /// This node is the preferred leader among the voters but the leader.
    pub first_successor: bool,
    /// A leadership transfer asked this follower to stay awake.
    pub awake: bool,
    /// Leader only: a follower that answers pings lacks part of the log.
    pub lagging: bool,
}

/// Whether a group seen as `s` should keep its Raft timers running.
pub fn should_tick(s: &Sight, t: &Timing) -> bool {
    if t.quiet_after.is_zero() {
        return true;
    }
    if s.is_leader {
        return s.idle < t.quiet_after || s.lagging;
    }
    if s.awake {
        return true;
    }
    match (s.leader, s.leader_dead_for) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(dead)) => s.first_successor || dead >= t.stagger,
    }
}

/// What `groups` shows of `group` (whose view is `view`), for `should_tick`.
fn sight(cluster: &Cluster, group: GroupId, view: &GroupView, timing: &Timing) -> Sight {
    let (groups, me) = (cluster.groups(), cluster.me());
    let leader = view.leader.filter(|l| *l != me);
    let leader_dead_for = leader.and_then(|l| cluster.liveness().leaderless_for(l, group, timing.live_within));
    let first_successor = match (leader, leader_dead_for) {
        (Some(l), Some(_)) => {
            let others: Vec<NodeId> = groups.voter_ids(group).into_iter().filter(|v| *v != l).collect();
            fallback_leader(group, &others) == Some(me)
        }
        _ => false,
    };
    let (idle, awake) = (groups.quiescer().idle(group), groups.quiescer().awake(group));
    let lagging = view.is_leader && cluster.live_follower_lagging(group);
    Sight { is_leader: view.is_leader, leader, idle, leader_dead_for, first_successor, awake, lagging }
}

/// Every `every`, switches each group's timers per `should_tick`, until
/// `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, timing: Timing, every: Duration, mut shutdown: watch::Receiver<bool>) {
    if timing.quiet_after.is_zero() {
        return;
    }
    let groups = cluster.groups();
    let mut seen: Vec<(Option<NodeId>, u64)> = vec![(None, 0); groups.count() as usize + 1];
    while crate::rounds::next(every, &mut shutdown).await {
        // The lock groups and the meta group.
        for group in 0..=groups.count() {
            let view = groups.view(group);
            if let Some(why) = &view.failed {
                tracing::error!(group, %why, "a raft group stopped; stopping the node so peers take over its groups");
                std::process::exit(70);
            }
            if seen[group as usize] != (view.leader, view.term) {
                seen[group as usize] = (view.leader, view.term);
                groups.quiescer().settle(group);
                groups.quiescer().touch(group);
            }
            // A group this node holds no replica of has nothing to time.
            let on = cluster.hosts(group) && should_tick(&sight(&cluster, group, &view, &timing), &timing);
            groups.quiescer().set_ticking(group, on);
        }
        metrics::gauge!(crate::metrics::GROUPS_QUIESCED).set(groups.quiescer().quiesced(groups.count()) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn timing() -> Timing {
        Timing { quiet_after: S(2), live_within: S(1), stagger: S(2) }
    }

    fn follower(idle: u64, dead: Option<u64>, successor: bool) -> Sight {
        Sight {
            is_leader: false,
            leader: Some(1),
            idle: S(idle),
            leader_dead_for: dead.map(S),
            first_successor: successor,
            awake: false,
            lagging: false,
        }
    }

    #[test]
    fn table() {
        let leader = |idle| Sight { is_leader: true, leader: None, ..follower(idle, None, false) };
        let no_leader = Sight { leader: None, ..follower(100, None, false) };
        let cases: &[(&str, Sight, bool)] = &[
            ("active leader ticks", leader(1), true),
            ("idle leader quiesces", leader(2), false),
            ("idle leader with a lagging live follower ticks", Sight { lagging: true, ..leader(30) }, true),
            ("follower of a live leader never ticks, even when active", follower(0, None, false), false),
            ("idle follower of a live leader stays quiet", follower(30, None, false), false),
            ("follower without a leader ticks", no_leader, true),
            ("successor wakes as soon as the leader is dead", follower(3, Some(0), true), true),
            ("other followers wait one stagger", follower(3, Some(1), false), false),
            ("other followers wake after the stagger", follower(3, Some(2), false), true),
            ("a follower asked to stay awake ticks", Sight { awake: true, ..follower(30, None, false) }, true),
        ];
        for (what, sight, want) in cases {
            assert_eq!(should_tick(sight, &timing()), *want, "{what}");
        }
        let never = Timing { quiet_after: Duration::ZERO, ..timing() };
        assert!(should_tick(&leader(1000), &never), "quiesce_after_ms = 0 never quiesces");
        assert!(should_tick(&follower(1000, None, false), &never), "nor stops a follower");
    }
}
