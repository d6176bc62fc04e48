//! This node's side of the cluster: its Raft groups (the [`Groups`]
//! registry), the node list and placement, where each group lives, and
//! what the node knows of its peers (liveness, draining notices).
//!
//! The node list is the membership of the meta group, a Raft group like
//! the lock groups (same log, same transport) whose id is the group count
//! and whose table stays empty: every node of the cluster is a member of
//! it, up to `META_VOTERS` as voters and the rest as learners
//! (`membership`), so every node has the list in its own replica and reads
//! it without a round trip. `admin add-node` and `remove-node` change it
//! once; each lock group's leader then moves the group's voters to what
//! placement computes from the list (`reconciler`).
//!
//! Invariants: the cached node list is recomputed only when the meta
//! membership's log id changes; a group is hosted here while its
//! membership lists this node and no leader said it removed this node from
//! that membership (a removal is kept in the log store across restarts);
//! peers' addresses are learned from the list.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::groups::{Groups, GroupsError};
use super::liveness::{Liveness, PingHooks};
use super::network::{PeerRouter, Ping};
use super::nodes::NodeList;
use super::state_machine::ApplyObserver;
use super::types::{LogId, NodeId, NodeInfo};
use crate::config::Config;
use crate::routing::GroupId;
use crate::storage::syncer::Syncer;
use crate::storage::Db;

/// How long a peer's draining notice holds unless it says it is back.
const DRAINING_FOR: Duration = Duration::from_secs(300);

/// The largest peer frame: snapshots travel whole, so it is far above the
/// client limit; peers are trusted (mutual TLS when TLS is on).
pub fn peer_frame_limit(config: &Config) -> usize {
    config.max_message_bytes.max(512 << 20)
}

pub struct Cluster {
    groups: Arc<Groups>,
    router: PeerRouter,
    liveness: Arc<Liveness>,
    /// Replicas per group (`replication_factor`).
    factor: usize,
    /// The configured voters, the node list until the meta group has one.
    configured: BTreeMap<NodeId, NodeInfo>,
    /// The node list and the meta membership it was computed from.
    cache: Mutex<Option<(Option<LogId>, Arc<NodeList>)>>,
    /// Groups a leader removed this node from, at which membership.
    departed: DashMap<GroupId, Option<LogId>>,
    /// A peer is live while a ping succeeded within this long.
    live_within: Duration,
    /// Peers that announced they are draining, and when.
    draining_peers: DashMap<NodeId, Instant>,
    /// Groups this node leads that are moving to their placement: the
    /// step taken or what it waits for (the reconciler's last round).
    moving: DashMap<GroupId, String>,
    /// The cluster removed this node (see `removed`).
    removed: AtomicBool,
    /// Told when this node's replica of a group is removed.
    observer: Arc<dyn ApplyObserver>,
}

impl Cluster {
    /// Opens every group of this node on `db` and connects it to its peers.
    pub async fn start(
        config: &Config,
        db: Db,
        syncer: Syncer,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<Self, GroupsError> {
        let peers = config.voters().into_iter().map(|p| (p.id, p.peer_addr));
        let tls = crate::tls::peer_client(&config.tls).map_err(|e| GroupsError::Config(e.to_string()))?;
        let links =
            crate::peer::Links::new(config.node_id, config.raft.dial_overrides(), tls, peer_frame_limit(config));
        let min_append_ttl = Duration::from_millis(config.raft.election_timeout_min_ms);
        let router = PeerRouter::new(config.node_id, peers, links, min_append_ttl);
        let groups = Arc::new(Groups::start(config, db, syncer, &router, observer.clone()).await?);
        let departed = groups.departures()?.into_iter().collect();
        let configured = config
            .voters()
            .into_iter()
            .map(|p| (p.id, NodeInfo { client_addr: p.client_addr, peer_addr: p.peer_addr }))
            .collect();
        let cluster = Self {
            groups,
            router,
            liveness: Arc::default(),
            factor: config.replication_factor,
            configured,
            cache: Mutex::default(),
            departed,
            live_within: super::liveness::live_within(&config.raft),
            draining_peers: DashMap::new(),
            moving: DashMap::new(),
            removed: AtomicBool::new(false),
            observer,
        };
        cluster.nodes();
        Ok(cluster)
    }

    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    pub fn router(&self) -> &PeerRouter {
        &self.router
    }

    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    pub fn me(&self) -> NodeId {
        self.groups.me()
    }

    /// The configured voters (the node list of a new cluster).
    pub(super) fn configured(&self) -> &BTreeMap<NodeId, NodeInfo> {
        &self.configured
    }

    /// The node list and the placement it gives.
    pub fn nodes(&self) -> Arc<NodeList> {
        let meta = self.groups.meta_id();
        let log_id = self.groups.membership_id(meta);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((from, list)) = cache.as_ref() {
            if *from == log_id {
                return list.clone();
            }
        }
        let list =
            Arc::new(NodeList::new(&self.groups.membership(meta), &self.configured, self.groups.count(), self.factor));
        for (id, info) in &list.nodes {
            if *id != self.me() {
                self.router.learn(*id, &info.peer_addr);
            }
        }
        *cache = Some((log_id, list.clone()));
        drop(cache);
        self.note_removed(&list);
        list
    }

    /// Whether this node holds a replica (voter or learner) of `group`: its
    /// membership lists it, and no leader said it removed this node from
    /// that membership.
    pub fn hosts(&self, group: GroupId) -> bool {
        let listed = self.groups.is_member(group, self.me());
        listed && self.departed.get(&group).is_none_or(|at| *at != self.groups.membership_id(group))
    }

    /// Records that a leader removed this node from `group`: the membership
    /// this replica has (the joint one) is the last it will receive, until
    /// a leader adds it again (a newer membership).
    pub fn mark_departed(&self, group: GroupId) {
        let at = self.groups.membership_id(group);
        tracing::info!(group, "this node's replica was removed from the group");
        if let Err(err) = self.groups.record_departure(group, &at) {
            tracing::warn!(group, error = %err, "cannot record the removal; a restart will show the group as held");
        }
        self.departed.insert(group, at);
        self.observer.departed(group);
        if group == self.groups.meta_id() {
            self.note_removed(&self.nodes());
        }
    }

    /// Where to send work for `group`: its leader as this node's replica
    /// sees it; for a group it holds no replica of, the live peer that says
    /// it leads it, else a live replica (which names the leader).
    pub fn route(&self, group: GroupId) -> Option<NodeId> {
        if self.hosts(group) {
            return self.groups.view(group).leader;
        }
        let live = self.live_within;
        self.liveness.claimed_leader(group, live).or_else(|| {
            let nodes = self.nodes();
            nodes.placement.replicas(group).iter().copied().find(|n| self.liveness.is_live(*n, live))
        })
    }

    /// True once the cluster removed this node from its node list: a
    /// leader told it so (it keeps that across restarts), or its own
    /// replica of the node list no longer names it. Cheap: a flag that
    /// `nodes` and `mark_departed` keep.
    pub fn removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    fn note_removed(&self, nodes: &NodeList) {
        let meta = self.groups.meta_id();
        let told = self.departed.get(&meta).is_some_and(|at| *at == self.groups.membership_id(meta));
        let unlisted = nodes.replicated && !nodes.nodes.contains_key(&self.me());
        if self.removed.swap(told || unlisted, Ordering::Relaxed) != (told || unlisted) {
            tracing::warn!(removed = told || unlisted, "this node's membership of the cluster changed");
        }
    }

    /// Records what `group` (led here) does to reach its placement (`None`:
    /// it is placed, or no longer led here).
    pub fn set_moving(&self, group: GroupId, what: Option<String>) {
        match what {
            Some(what) => drop(self.moving.insert(group, what)),
            None => drop(self.moving.remove(&group)),
        }
    }

    /// What `group` does to reach its placement, if it moves and this node
    /// leads it.
    pub fn moving(&self, group: GroupId) -> Option<String> {
        self.groups.view(group).is_leader.then(|| self.moving.get(&group).map(|m| m.clone())).flatten()
    }

    /// Whether node `id` answered a ping lately (this node counts as live).
    pub fn peer_live(&self, id: NodeId) -> bool {
        id == self.me() || self.liveness.is_live(id, self.live_within)
    }

    /// True when this node leads `group`, `node` acknowledged a heartbeat
    /// or a node ping within `max_age` (a quiesced group sends no
    /// heartbeats) and has every entry of the leader's log.
    pub fn follower_healthy(&self, group: GroupId, node: NodeId, max_age: Duration) -> bool {
        let Some(progress) = self.groups.follower(group, node) else { return false };
        let reachable = progress.heard.is_some_and(|t| t < max_age) || self.liveness.is_live(node, max_age);
        reachable && progress.lag == 0
    }

    /// True when this node leads `group` and a voter that answers pings
    /// has not yet matched the leader's last log entry.
    pub fn live_follower_lagging(&self, group: GroupId) -> bool {
        self.groups.lagging_followers(group).into_iter().any(|n| self.liveness.is_live(n, self.live_within))
    }

    /// Wakes every group this node leads (a follower came back and needs
    /// heartbeats to find its leader and catch up).
    pub fn wake_led_groups(&self) {
        for group in 0..self.groups.count() {
            if self.groups.view(group).is_leader {
                self.groups.quiescer().touch(group);
            }
        }
    }

    /// The groups (the meta group too) this node holds a replica of, with
    /// the membership each replica knows: sent with every ping, so a leader
    /// can tell a replica it removed while it was unreachable.
    pub fn hosted(&self) -> Vec<(GroupId, Option<LogId>)> {
        let all = 0..=self.groups.meta_id();
        all.filter(|&g| self.hosts(g)).map(|g| (g, self.groups.membership_id(g))).collect()
    }

    /// `leader` says it removed this node from `left`'s groups, each under
    /// the membership given: this replica missed being told (it was down or
    /// cut off), unless it knows a newer membership (it was added back).
    pub fn told_left(&self, leader: NodeId, left: &[(GroupId, LogId)]) {
        for (group, at) in left {
            let ours = self.groups.membership_id(*group);
            if self.hosts(*group) && ours.as_ref().is_none_or(|o| o < at) {
                tracing::info!(group, leader, "the group's leader says this node's replica was removed");
                self.mark_departed(*group);
            }
        }
    }

    /// Records a peer's draining notice (forgotten after `DRAINING_FOR`,
    /// or when the peer says it is back).
    pub fn mark_draining(&self, node: NodeId, draining: bool) {
        if draining {
            self.draining_peers.insert(node, Instant::now());
        } else {
            self.draining_peers.remove(&node);
        }
    }

    /// Whether `node` said it is draining (lately).
    pub fn peer_draining(&self, node: NodeId) -> bool {
        self.draining_peers.get(&node).is_some_and(|at| at.elapsed() < DRAINING_FOR)
    }

    /// A healthy, non-draining peer to take the leadership of `group`, its
    /// preferred leader first (`max_age`: how recently it must have been
    /// heard from).
    pub fn handoff_target(&self, group: GroupId, max_age: Duration) -> Option<NodeId> {
        let me = self.me();
        let ok = |id: &NodeId| *id != me && !self.peer_draining(*id) && self.follower_healthy(group, *id, max_age);
        let voters = self.groups.voter_ids(group);
        let preferred = self.nodes().placement.preferred_leader(group).filter(|p| voters.contains(p) && ok(p));
        preferred.or_else(|| voters.iter().copied().find(ok))
    }
}

/// The ping loop's view of the node (see `liveness::run`).
impl PingHooks for Arc<Cluster> {
    fn ping(&self) -> Ping {
        Ping { from: self.me(), hosted: self.hosted() }
    }

    fn revived(&self, _peer: NodeId) {
        // A follower came back: it needs heartbeats to find its leader.
        self.wake_led_groups();
    }

    fn told_left(&self, peer: NodeId, left: &[(GroupId, LogId)]) {
        Cluster::told_left(self, peer, left);
    }
}
