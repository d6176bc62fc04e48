//! Node liveness: one ping per peer per heartbeat interval, for all groups.
//!
//! Quiesced groups send no heartbeats, so their followers cannot tell a
//! silent leader from a dead one by Raft alone. This table answers that for
//! every group at once: a peer is live while a ping to it succeeded within
//! the election timeout. Pings travel on the same channel as the peer's Raft
//! traffic, so a cut link looks exactly like a dead peer.
//!
//! Invariants: only this node's own successful outgoing pings mark a peer
//! live (an incoming ping proves nothing about the other direction); a peer
//! never pinged successfully is not live; `revived` reports each transition
//! from not live to live once, so leaders can wake the groups that peer
//! follows.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::watch;

use super::network::PeerRouter;
use super::types::NodeId;

#[derive(Default)]
pub struct Liveness {
    last_ok: DashMap<NodeId, Instant>,
}

impl Liveness {
    /// Records a successful ping of `node`; true when it was not live before.
    pub fn record_ok(&self, node: NodeId, live_within: Duration) -> bool {
        let now = Instant::now();
        let before = self.last_ok.insert(node, now);
        before.is_none_or(|t| now.duration_since(t) >= live_within)
    }

    /// How long `node` has been considered dead (`None` while it is live).
    /// A node never reached counts as dead since forever (`Duration::MAX`).
    pub fn dead_for(&self, node: NodeId, live_within: Duration) -> Option<Duration> {
        match self.last_ok.get(&node).map(|t| t.elapsed()) {
            None => Some(Duration::MAX),
            Some(age) if age < live_within => None,
            Some(age) => Some(age - live_within),
        }
    }

    pub fn is_live(&self, node: NodeId, live_within: Duration) -> bool {
        self.dead_for(node, live_within).is_none()
    }
}

/// Pings every known peer each `every`, until `shutdown` turns true; calls
/// `revived` with each peer that comes back to life.
pub async fn run(
    router: PeerRouter,
    liveness: std::sync::Arc<Liveness>,
    every: Duration,
    live_within: Duration,
    revived: impl Fn(NodeId) + Send + Sync,
    mut shutdown: watch::Receiver<bool>,
) {
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
        let router = &router;
        let pings = peers.iter().map(|&peer| async move { (peer, router.ping(peer, every).await) });
        for (peer, ok) in futures::future::join_all(pings).await {
            if ok && liveness.record_ok(peer, live_within) {
                tracing::info!(peer, "peer answers pings again");
                revived(peer);
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
}
