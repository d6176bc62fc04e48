//! The Raft groups of one node: start-up, bootstrap and lookup.
//!
//! Invariants: a node runs a Raft instance for each lock group `0..G` and
//! for the meta group `G` (`cluster.rs`), all sharing one RocksDB, one WAL
//! syncer and one peer router; an instance of a group the node holds no
//! replica of stays uninitialized and idle until a leader adds the node.
//! Bootstrap happens once, on a new cluster: every configured node
//! initializes the meta group with the configured voters and each lock
//! group it holds by placement with that group's replicas (the same
//! membership on every node, which openraft allows). A node whose meta
//! group is initialized never initializes anything again. The preferred
//! leader of each group calls an election at once so leaders start out
//! spread evenly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{Config as RaftConfig, ServerState, SnapshotPolicy};

use super::cluster::ClusterCache;
use super::group_network::GroupNetwork;
use super::liveness::Liveness;
use super::network::PeerRouter;
use super::quiesce::Quiescer;
use super::state_machine::Raft;
use super::state_machine::{ApplyObserver, GroupState, StateMachine};
use super::store::log::LogStore;
use super::types::{NodeId, NodeInfo};
use crate::config::Config;
use crate::routing::GroupId;
use crate::storage::syncer::Syncer;
use crate::storage::Db;

#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("raft config is invalid: {0}")]
    Config(String),
    #[error("raft group {group} failed to start: {why}")]
    Start { group: GroupId, why: String },
}

/// A snapshot of one group's Raft state as this node sees it.
#[derive(Clone, Debug, Default)]
pub struct GroupView {
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub term: u64,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Why the group's Raft core failed, if it did (a storage error or a
    /// panic; a normal shutdown is not a failure).
    pub failed: Option<String>,
}

pub struct Groups {
    pub(super) me: NodeId,
    /// Lock groups (the meta group is one more).
    groups: u32,
    /// Replicas per group (`replication_factor`).
    pub(super) factor: usize,
    /// The configured voters, the node list until the meta group has one.
    pub(super) configured: BTreeMap<NodeId, NodeInfo>,
    pub(super) cluster_cache: std::sync::Mutex<ClusterCache>,
    /// Groups a leader removed this node from, at which membership.
    pub(super) departed: dashmap::DashMap<GroupId, Option<super::types::LogId>>,
    /// A peer is live while a ping succeeded within this long.
    pub(super) live_within: Duration,
    /// Peers that announced they are draining, and when.
    draining_peers: dashmap::DashMap<NodeId, std::time::Instant>,
    rafts: Arc<Vec<Raft>>,
    states: Vec<Arc<GroupState>>,
    /// Each group's log (clones of openraft's), to flush on shutdown.
    pub(super) logs: Vec<LogStore>,
    router: PeerRouter,
    quiescer: Arc<Quiescer>,
    pub(super) liveness: Arc<Liveness>,
}

fn raft_config(config: &Config) -> Result<Arc<RaftConfig>, GroupsError> {
    let r = &config.raft;
    // A follower that acknowledged replication within this long gets no
    // heartbeat: none flow while appends do. openraft needs the interval
    // plus this plus one tick (13/64 of the interval) to stay below the
    // election timeout; config validation keeps the minimum positive.
    let tick = r.heartbeat_interval_ms * 13 / 64 + 1;
    let suppress = r.heartbeat_interval_ms.min(r.election_timeout_min_ms - r.heartbeat_interval_ms - tick);
    let rc = RaftConfig {
        cluster_name: "shardlock".into(),
        heartbeat_interval: r.heartbeat_interval_ms,
        heartbeat_min_interval: Some(suppress),
        election_timeout_min: r.election_timeout_min_ms,
        election_timeout_max: r.election_timeout_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(r.snapshot_every_entries),
        max_in_snapshot_log_to_keep: r.snapshot_every_entries.min(1000),
        purge_batch_size: 256,
        enable_pre_vote: Some(true),
        // A restarted leader stands for election like any node. Restoring
        // its leadership at once is unsafe here: the committed log id is
        // written lazily (`LogStore::save_committed`), and a leader's own
        // unsynced appends may be lost in a crash after followers acked
        // them, so a restored leader could serve a stale table and reuse a
        // log index, handing out a fencing token twice (seen in t08's slow
        // disk round and t02's full restart). An election makes the
        // leader with the longest log commit a blank entry of its term.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    rc.validate().map(Arc::new).map_err(|e| GroupsError::Config(e.to_string()))
}

/// The largest peer frame: snapshots travel whole, so it is far above the
/// client limit; peers are trusted (mutual TLS when TLS is on).
pub fn peer_frame_limit(config: &Config) -> usize {
    config.max_message_bytes.max(512 << 20)
}

impl Groups {
    /// Creates (or reopens from `db`) every group of this node.
    pub async fn start(
        config: &Config,
        db: Db,
        syncer: Syncer,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<Self, GroupsError> {
        let rc = raft_config(config)?;
        let peers = config.voters().into_iter().map(|p| (p.id, p.peer_addr));
        let tls = crate::tls::peer_client(&config.tls).map_err(|e| GroupsError::Config(e.to_string()))?;
        let links =
            crate::peer::Links::new(config.node_id, config.raft.dial_overrides(), tls, peer_frame_limit(config));
        let min_append_ttl = Duration::from_millis(config.raft.election_timeout_min_ms);
        let router = PeerRouter::new(config.node_id, peers, links, min_append_ttl);
        let (mut rafts, mut states, mut logs) = (Vec::new(), Vec::new(), Vec::new());
        for group in 0..=config.groups {
            let log = LogStore::new(db.clone(), syncer.clone(), group);
            logs.push(log.clone());
            let sm = StateMachine::new(group, db.clone(), config.limits.clone(), observer.clone());
            states.push(sm.shared());
            let network = GroupNetwork::new(router.clone(), group);
            let raft = Raft::new(config.node_id, rc.clone(), network, log, sm)
                .await
                .map_err(|e| GroupsError::Start { group, why: e.to_string() })?;
            rafts.push(raft);
        }
        let departed = dashmap::DashMap::new();
        for (group, log) in logs.iter().enumerate() {
            let at = log.departed().map_err(|e| GroupsError::Start { group: group as GroupId, why: e.to_string() })?;
            if let Some(at) = at {
                departed.insert(group as GroupId, at);
            }
        }
        let draining_peers = dashmap::DashMap::new();
        let rafts = Arc::new(rafts);
        let quiescer = Arc::new(Quiescer::new(rafts.clone()));
        let liveness = Arc::new(Liveness::default());
        let configured = config
            .voters()
            .into_iter()
            .map(|p| (p.id, NodeInfo { client_addr: p.client_addr, peer_addr: p.peer_addr }))
            .collect();
        Ok(Self {
            me: config.node_id,
            groups: config.groups,
            factor: config.replication_factor,
            configured,
            cluster_cache: Default::default(),
            departed,
            live_within: super::quiesce::Timing::from_config(&config.raft).live_within,
            draining_peers,
            rafts,
            states,
            logs,
            router,
            quiescer,
            liveness,
        })
    }

    /// On a new cluster, initializes the meta group and the lock groups
    /// this node holds; on a node that has been part of a cluster, nothing.
    pub async fn bootstrap(&self) -> Result<(), GroupsError> {
        let meta = self.meta_id();
        if self.initialized(meta).await? {
            return Ok(());
        }
        let seed = self.meta_seed();
        // NotAllowed means another path initialized it first: fine.
        let _ = self.raft(meta).initialize(seed.clone()).await;
        if seed.keys().next() == Some(&self.me) {
            let _ = self.raft(meta).trigger().elect(false).await;
        }
        let cluster = self.cluster();
        for group in 0..self.count() {
            let replicas = cluster.placement.replicas(group);
            if !replicas.contains(&self.me) || self.initialized(group).await? {
                continue;
            }
            let members: BTreeMap<NodeId, NodeInfo> =
                replicas.iter().filter_map(|id| seed.get(id).map(|n| (*id, n.clone()))).collect();
            let _ = self.raft(group).initialize(members).await;
            if cluster.placement.preferred_leader(group) == Some(self.me) {
                let _ = self.raft(group).trigger().elect(false).await;
            }
        }
        Ok(())
    }

    async fn initialized(&self, group: GroupId) -> Result<bool, GroupsError> {
        self.raft(group).is_initialized().await.map_err(|e| GroupsError::Start { group, why: e.to_string() })
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The number of lock groups (the meta group not counted).
    pub fn count(&self) -> u32 {
        self.groups
    }

    pub fn raft(&self, group: GroupId) -> &Raft {
        &self.rafts[group as usize]
    }

    pub fn rafts(&self) -> Arc<Vec<Raft>> {
        self.rafts.clone()
    }

    pub fn state(&self, group: GroupId) -> &Arc<GroupState> {
        &self.states[group as usize]
    }

    pub fn router(&self) -> &PeerRouter {
        &self.router
    }

    pub fn quiescer(&self) -> &Arc<Quiescer> {
        &self.quiescer
    }

    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    /// Wakes every group this node leads (a follower came back and needs
    /// heartbeats to find its leader and catch up).
    pub fn wake_led_groups(&self) {
        for group in 0..self.count() {
            if self.view(group).is_leader {
                self.quiescer.touch(group);
            }
        }
    }

    /// This node's view of `group` right now (no I/O, no waiting).
    pub fn view(&self, group: GroupId) -> GroupView {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        GroupView {
            leader: m.current_leader,
            is_leader: m.state == ServerState::Leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: m.cluster_committed.map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            failed: match &m.running_state {
                Err(openraft::error::Fatal::Stopped) | Ok(()) => None,
                Err(fatal) => Some(fatal.to_string()),
            },
        }
    }

    /// The address book entry of `node` in `group`'s membership.
    pub fn node_info(&self, group: GroupId, node: NodeId) -> Option<NodeInfo> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().get_node(&node).cloned()
    }

    /// The voters of `group` with their addresses.
    pub fn members(&self, group: GroupId) -> Vec<(NodeId, NodeInfo)> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().nodes().map(|(id, n)| (*id, n.clone())).collect()
    }

    /// True when this node leads `group`, `node` acknowledged a heartbeat
    /// or a node ping within `max_age` (a quiesced group sends no
    /// heartbeats) and has every entry of the leader's log.
    pub fn follower_healthy(&self, group: GroupId, node: NodeId, max_age: Duration) -> bool {
        use openraft::Instant as _;
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        let heard = m.heartbeat.as_ref().and_then(|h| h.get(&node)).and_then(|t| t.as_ref());
        let matched = m.replication.as_ref().and_then(|r| r.get(&node)).and_then(|l| l.as_ref()).map(|l| l.index);
        let reachable = heard.is_some_and(|t| t.elapsed() < max_age) || self.liveness.is_live(node, max_age);
        reachable && matched >= m.last_log_index
    }

    /// True when this node leads `group` and a voter that answers pings
    /// has not yet matched the leader's last log entry.
    pub fn live_follower_lagging(&self, group: GroupId, live_within: Duration) -> bool {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        let Some(replication) = m.replication.as_ref() else { return false };
        replication.iter().any(|(node, matched)| {
            *node != self.me
                && matched.as_ref().map(|l| l.index) < m.last_log_index
                && self.liveness.is_live(*node, live_within)
        })
    }

    /// Records a peer's draining notice (forgotten after 5 minutes, or when
    /// the peer says it is back).
    pub fn mark_draining(&self, node: NodeId, draining: bool) {
        if draining {
            self.draining_peers.insert(node, std::time::Instant::now());
        } else {
            self.draining_peers.remove(&node);
        }
    }

    /// Whether `node` said it is draining (in the last 5 minutes).
    pub fn peer_draining(&self, node: NodeId) -> bool {
        self.draining_peers.get(&node).is_some_and(|at| at.elapsed() < Duration::from_secs(300))
    }

    /// Waits until `group` has a leader or `timeout` passes.
    pub async fn wait_leader(&self, group: GroupId, timeout: Duration) -> Option<NodeId> {
        let wait = self.raft(group).wait(Some(timeout));
        wait.metrics(|m| m.current_leader.is_some(), "group has a leader").await.ok()?.current_leader
    }

    /// Stops every group, then writes what its log still holds in memory.
    pub async fn shutdown(&self) {
        for raft in self.rafts.iter() {
            let _ = raft.shutdown().await;
        }
        for (group, log) in self.logs.iter().enumerate() {
            if let Err(err) = log.flush_committed() {
                tracing::warn!(group, error = %err, "cannot write the committed index on shutdown");
            }
        }
    }
}
