//! Node liveness: one ping per peer per heartbeat interval, for all groups.
//!
//! Quiesced groups send no heartbeats, so their followers cannot tell a
//! silent leader from a dead one by Raft alone. This table answers that for
//! every group at once: a peer is live while a ping to it succeeded within
//! the election timeout. Pings travel on the same channel as the peer's Raft
//! traffic, so a cut link looks exactly like a dead peer.
//!
//! A live node is not always a leader: one that restarts comes back as a
//! follower (a restarted leader stands for election, see `groups.rs`), and
//! its quick answers to pings would keep its old followers asleep forever.
//! So a ping's answer lists the groups the peer leads, and a group whose
//! leader's node says it does not lead it counts as having a dead leader
//! (`leaderless_for`), counted like a dead node from the first such answer.
//!
//! Invariants: only this node's own successful outgoing pings mark a peer
//! live (an incoming ping proves nothing about the other direction); a peer
//! never pinged successfully is not live; `revived` reports each transition
//! from not live to live once, so leaders can wake the groups that peer
//! follows; a peer whose answer lists no groups (a node of an older version)
//! is taken to lead every group it is said to.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::watch;

use super::network::{PeerRouter, Ping};
use super::types::{LogId, NodeId};
use crate::routing::GroupId;

#[derive(Default)]
struct PeerSeen {
    last_ok: Option<Instant>,
    /// Groups the peer's answers said it does not lead, since when; `None`
    /// until an answer lists its groups.
    not_leading: Option<HashMap<GroupId, Instant>>,
}

/// How recently a ping must have succeeded for a peer to count as live:
/// the election timeout's lower bound.
pub fn live_within(raft: &crate::config::RaftConfig) -> Duration {
    Duration::from_millis(raft.election_timeout_min_ms)
}

#[derive(Default)]
pub struct Liveness {
    peers: DashMap<NodeId, PeerSeen>,
}

impl Liveness {
    /// Records a successful ping of `node`; true when it was not live before.
    pub fn record_ok(&self, node: NodeId, live_within: Duration) -> bool {
        let now = Instant::now();
        let before = self.peers.entry(node).or_default().last_ok.replace(now);
        before.is_none_or(|t| now.duration_since(t) >= live_within)
    }

    /// Records which of `groups` a ping's answer says `node` leads; an
    /// answer without the list (an older node) records nothing.
    pub fn record_leads(&self, node: NodeId, leads: Option<&[GroupId]>, groups: u32) {
        let Some(leads) = leads else { return };
        let mut led = vec![false; groups as usize];
        for &g in leads {
            if let Some(l) = led.get_mut(g as usize) {
                *l = true;
            }
        }
        let now = Instant::now();
        let mut peer = self.peers.entry(node).or_default();
        let not_leading = peer.not_leading.get_or_insert_with(HashMap::new);
        for group in 0..groups {
            if led[group as usize] {
                not_leading.remove(&group);
            } else {
                not_leading.entry(group).or_insert(now);
            }
        }
    }

    /// How long `node` has been considered dead (`None` while it is live).
    /// A node never reached counts as dead since forever (`Duration::MAX`).
    pub fn dead_for(&self, node: NodeId, live_within: Duration) -> Option<Duration> {
        let last_ok = self.peers.get(&node).and_then(|p| p.last_ok);
        match last_ok.map(|t| t.elapsed()) {
            None => Some(Duration::MAX),
            Some(age) if age < live_within => None,
            Some(age) => Some(age - live_within),
        }
    }

    /// How long `group` has been without a leader, for a follower that
    /// takes `leader` for its leader: as long as `leader`'s node is dead,
    /// or has answered pings saying it does not lead `group` (after the
    /// same grace `live_within`, so an answer racing an election does not
    /// count); `None` while it leads as far as this node can tell.
    pub fn leaderless_for(&self, leader: NodeId, group: GroupId, live_within: Duration) -> Option<Duration> {
        if let Some(dead) = self.dead_for(leader, live_within) {
            return Some(dead);
        }
        let peer = self.peers.get(&leader)?;
        let since = *peer.not_leading.as_ref()?.get(&group)?;
        since.elapsed().checked_sub(live_within)
    }

    /// A live peer whose last answer said it leads `group`: the route to a
    /// group this node holds no replica of. Two may claim it for a moment
    /// around an election; the stale one answers `NotLeader`.
    pub fn claimed_leader(&self, group: GroupId, live_within: Duration) -> Option<NodeId> {
        let now = Instant::now();
        self.peers
            .iter()
            .filter(|p| p.last_ok.is_some_and(|t| now.duration_since(t) < live_within))
            // Its last answer listed its groups, and not as not led.
            .find(|p| p.not_leading.as_ref().is_some_and(|n| !n.contains_key(&group)))
            .map(|p| *p.key())
    }

    pub fn is_live(&self, node: NodeId, live_within: Duration) -> bool {
        self.dead_for(node, live_within).is_none()
    }
}

/// What the ping loop asks of and tells the rest of the node.
pub trait PingHooks: Send + Sync {
    /// The ping to send this round (the groups this node holds).
    fn ping(&self) -> Ping;
    /// `peer` answers pings again after being dead.
    fn revived(&self, peer: NodeId);
    /// `peer`, leading these groups, says this node was removed from them.
    fn told_left(&self, peer: NodeId, left: &[(GroupId, LogId)]);
}

/// Pings every known peer each `every`, until `shutdown` turns true, and
/// tells `hooks` what the answers say. `groups` is how many lock groups
/// there are.
pub async fn run(
    router: PeerRouter,
    groups: u32,
    liveness: std::sync::Arc<Liveness>,
    timing: (Duration, Duration),
    hooks: impl PingHooks,
    mut shutdown: watch::Receiver<bool>,
) {
    let (every, live_within) = timing;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let peers = router.peers();
        let (router, ping) = (&router, &crate::codec::encode(&hooks.ping()));
        let pings = peers.iter().map(|&peer| async move { (peer, router.ping(peer, ping, every).await) });
        for (peer, answer) in futures::future::join_all(pings).await {
            let Some(answer) = answer else { continue };
            liveness.record_leads(peer, answer.leads.as_deref(), groups);
            if liveness.record_ok(peer, live_within) {
                tracing::info!(peer, "peer answers pings again");
                hooks.revived(peer);
            }
            if !answer.left.is_empty() {
                hooks.told_left(peer, &answer.left);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_peers_are_dead_and_revive_once() {
        let live = Liveness::default();
        let within = Duration::from_secs(1);
        assert_eq!(live.dead_for(7, within), Some(Duration::MAX));
        assert!(live.record_ok(7, within), "first success is a revival");
        assert!(live.is_live(7, within));
        assert!(!live.record_ok(7, within), "a live peer does not revive again");
        assert!(!live.is_live(7, Duration::ZERO), "stale once older than the window");
    }

    #[test]
    fn a_live_node_that_stopped_leading_a_group_leaves_it_leaderless() {
        let live = Liveness::default();
        let within = Duration::from_millis(20);
        live.record_ok(1, Duration::from_secs(60));
        live.record_leads(1, None, 4);
        assert_eq!(live.leaderless_for(1, 2, within), None, "an older node's answer: it leads what it is said to");
        live.record_leads(1, Some(&[0, 2]), 4);
        assert_eq!(live.leaderless_for(1, 2, within), None, "it leads group 2");
        assert_eq!(live.leaderless_for(1, 3, within), None, "not yet past the grace");
        std::thread::sleep(within * 2);
        live.record_ok(1, within);
        live.record_leads(1, Some(&[0]), 4);
        assert!(live.leaderless_for(1, 3, within).is_some(), "group 3 has not been led past the grace");
        assert_eq!(live.leaderless_for(1, 2, within), None, "group 2 just stopped: the grace counts from now");
        live.record_leads(1, Some(&[0, 3]), 4);
        assert_eq!(live.leaderless_for(1, 3, within), None, "leading again");
        assert_eq!(live.leaderless_for(9, 0, within), Some(Duration::MAX), "a node never reached");
    }

    #[test]
    fn the_claimed_leader_is_a_live_peer_that_says_it_leads() {
        let live = Liveness::default();
        let within = Duration::from_secs(60);
        assert_eq!(live.claimed_leader(2, within), None);
        live.record_leads(4, Some(&[1, 2]), 8);
        assert_eq!(live.claimed_leader(2, within), None, "never pinged successfully: not live");
        live.record_ok(4, within);
        assert_eq!(live.claimed_leader(2, within), Some(4));
        live.record_leads(4, Some(&[1]), 8);
        assert_eq!(live.claimed_leader(2, within), None, "it stopped leading group 2");
        assert_eq!(live.claimed_leader(1, Duration::ZERO), None, "stale once older than the window");
    }
}
