//! The registry of a node's Raft groups: one openraft instance per lock
//! group `0..G` and one for the meta group `G`, their tables and logs, and
//! what is asked of one group at a time (look at it, write to it, read it
//! linearizably, move its leadership).
//!
//! Invariants: every group shares the node's one RocksDB, one WAL syncer
//! and one peer router; an instance of a group the node holds no replica
//! of stays uninitialized and idle until a leader adds the node; a write or
//! a read marks its group active (`Quiescer::touch`), and a leader whose
//! lease lapsed while its group was quiet confirms itself with a ReadIndex
//! round before it writes. Cluster-wide knowledge (the node list, where
//! groups live, peers) is `Cluster`'s, not this registry's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::{ClientWriteResult, ReadPolicy};
use openraft::{Config as RaftConfig, ServerState, SnapshotPolicy};

use super::completion::Completion;
use super::group_network::GroupNetwork;
use super::network::PeerRouter;
use super::proposal::Proposal;
use super::quiescer::Quiescer;
use super::state_machine::{ApplyObserver, GroupState, Raft, StateMachine};
use super::store::log::LogStore;
use super::types::{Committed, LogId, NodeId, NodeInfo, StoredMembership, TypeConfig};
use crate::config::Config;
use crate::lock::Command;
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

/// Why a write or a read did not happen on this node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("this node does not lead the group")]
    NotLeader(Option<NodeInfo>),
    #[error("the group has no quorum ({0})")]
    NoQuorum(String),
    #[error("the raft group stopped ({0})")]
    Stopped(String),
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

/// How far a follower is, as the group's leader knows it.
#[derive(Clone, Copy, Debug)]
pub struct FollowerProgress {
    /// Time since it last acknowledged a heartbeat, if ever.
    pub heard: Option<Duration>,
    /// Entries of the leader's log it does not hold yet.
    pub lag: u64,
}

pub struct Groups {
    me: NodeId,
    /// Lock groups (the meta group is one more).
    count: u32,
    rafts: Arc<Vec<Raft>>,
    states: Vec<Arc<GroupState>>,
    /// Each group's log (clones of openraft's), to flush on shutdown and to
    /// record a removal.
    logs: Vec<LogStore>,
    quiescer: Arc<Quiescer>,
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

fn written(result: Option<ClientWriteResult<TypeConfig>>) -> Result<Committed, GroupError> {
    match result {
        Some(Ok(resp)) => Ok(resp.data),
        Some(Err(ClientWriteError::ForwardToLeader(f))) | Some(Err(ClientWriteError::LogEntryDiscarded(f))) => {
            Err(GroupError::NotLeader(f.leader_node))
        }
        Some(Err(other)) => Err(GroupError::Stopped(other.to_string())),
        None => Err(GroupError::Stopped("the write was dropped: the node is shutting down".into())),
    }
}

impl Groups {
    /// Creates (or reopens from `db`) every group of this node.
    pub async fn start(
        config: &Config,
        db: Db,
        syncer: Syncer,
        router: &PeerRouter,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<Self, GroupsError> {
        let rc = raft_config(config)?;
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
        let rafts = Arc::new(rafts);
        let quiescer = Arc::new(Quiescer::new(rafts.clone()));
        Ok(Self { me: config.node_id, count: config.groups, rafts, states, logs, quiescer })
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The number of lock groups (the meta group not counted).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The meta group's id: the one after the last lock group.
    pub fn meta_id(&self) -> GroupId {
        self.count
    }

    pub(super) fn raft(&self, group: GroupId) -> &Raft {
        &self.rafts[group as usize]
    }

    pub fn state(&self, group: GroupId) -> &Arc<GroupState> {
        &self.states[group as usize]
    }

    pub fn quiescer(&self) -> &Arc<Quiescer> {
        &self.quiescer
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

    /// `group`'s membership as this node's replica knows it.
    pub(super) fn membership(&self, group: GroupId) -> StoredMembership {
        self.raft(group).metrics().borrow_watched().membership_config.as_ref().clone()
    }

    /// The log id of `group`'s membership as this node knows it.
    pub(super) fn membership_id(&self, group: GroupId) -> Option<LogId> {
        self.raft(group).metrics().borrow_watched().membership_config.log_id().clone()
    }

    /// Whether `group`'s membership lists `node` (a cheap check: nothing
    /// is copied).
    pub fn is_member(&self, group: GroupId, node: NodeId) -> bool {
        self.raft(group).metrics().borrow_watched().membership_config.membership().get_node(&node).is_some()
    }

    /// The address book entry of `node` in `group`'s membership.
    pub fn node_info(&self, group: GroupId, node: NodeId) -> Option<NodeInfo> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().get_node(&node).cloned()
    }

    /// The members (voters and learners) of `group` with their addresses.
    pub fn members(&self, group: GroupId) -> Vec<(NodeId, NodeInfo)> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().nodes().map(|(id, n)| (*id, n.clone())).collect()
    }

    /// The voters of `group` as this node knows them.
    pub fn voter_ids(&self, group: GroupId) -> Vec<NodeId> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().voter_ids().collect()
    }

    /// The learners of `group` as this node knows them.
    pub fn learner_ids(&self, group: GroupId) -> Vec<NodeId> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().learner_ids().collect()
    }

    /// How far `node` follows this node's lead of `group` (`None` unless
    /// this node leads it and `node` is a member).
    pub fn follower(&self, group: GroupId, node: NodeId) -> Option<FollowerProgress> {
        use openraft::Instant as _;
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        let matched = m.replication.as_ref()?.get(&node)?.as_ref().map(|l| l.index);
        let heard = m.heartbeat.as_ref().and_then(|h| h.get(&node)).and_then(|t| t.as_ref()).map(|t| t.elapsed());
        let lag = match (m.last_log_index, matched) {
            (Some(last), Some(matched)) => last.saturating_sub(matched),
            (Some(last), None) => last + 1,
            (None, _) => 0,
        };
        Some(FollowerProgress { heard, lag })
    }

    /// The followers of `group` (led by this node) that lack part of its log.
    pub fn lagging_followers(&self, group: GroupId) -> Vec<NodeId> {
        let metrics = self.raft(group).metrics();
        let m = metrics.borrow_watched();
        let Some(replication) = m.replication.as_ref() else { return Vec::new() };
        replication
            .iter()
            .filter(|(node, matched)| **node != self.me && matched.as_ref().map(|l| l.index) < m.last_log_index)
            .map(|(node, _)| *node)
            .collect()
    }

    /// Whether `group` was initialized on this node (it has a membership).
    pub(super) async fn initialized(&self, group: GroupId) -> Result<bool, GroupsError> {
        self.raft(group).is_initialized().await.map_err(|e| GroupsError::Start { group, why: e.to_string() })
    }

    /// Initializes `group` with `members` (a new cluster); one that is
    /// already initialized stays as it is.
    pub(super) async fn initialize(&self, group: GroupId, members: BTreeMap<NodeId, NodeInfo>) {
        // NotAllowed means another path initialized it first: fine.
        let _ = self.raft(group).initialize(members).await;
    }

    /// Makes this node stand for election in `group` now.
    pub(super) async fn elect(&self, group: GroupId) {
        let _ = self.raft(group).trigger().elect(false).await;
    }

    /// Asks this node's leadership of `group` to move to `to`; the one way
    /// a leader transfer is asked for (drain, balancer, reconciler).
    pub async fn transfer_leader(&self, group: GroupId, to: NodeId) -> Result<(), String> {
        self.raft(group).trigger().transfer_leader(to).await.map_err(|e| e.to_string())
    }

    /// Waits until `group` has a leader or `timeout` passes.
    pub async fn wait_leader(&self, group: GroupId, timeout: Duration) -> Option<NodeId> {
        let wait = self.raft(group).wait(Some(timeout));
        wait.metrics(|m| m.current_leader.is_some(), "group has a leader").await.ok()?.current_leader
    }

    /// Proposes `commands` as one entry of `group`; `done` gets the result,
    /// exactly once: the entry's outcomes (on this node, the leader's
    /// apply), or why none applied here. It runs where openraft settles the
    /// write, so it must not block.
    pub async fn submit(
        &self,
        group: GroupId,
        commands: Vec<Command>,
        done: impl FnOnce(Result<Committed, GroupError>) + Send + 'static,
    ) {
        // Made first: if this future is dropped at an await below, or openraft
        // fails fatally, the completion is dropped unanswered and `done` runs.
        let completion = Completion::new(move |result| done(written(result)));
        self.wake_to_write(group).await;
        let _ = self.raft(group).client_write_ff(Proposal::new(commands), Some(completion)).await;
    }

    /// Marks `group` active; if this node leads it and it was quiet, renews
    /// the leader's lapsed lease with one ReadIndex round, without which
    /// openraft refuses writes and membership changes.
    pub(super) async fn wake_to_write(&self, group: GroupId) {
        if self.quiescer.touch(group) {
            let _ = self.raft(group).ensure_linearizable(ReadPolicy::ReadIndex).await;
        }
    }

    /// Confirms this node leads `group` (a ReadIndex round) and waits until
    /// it applied everything committed before; returns that read index.
    pub async fn read_index(&self, group: GroupId) -> Result<u64, GroupError> {
        match self.raft(group).ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => {
                self.quiescer.touch(group);
                Ok(read_log_id.index())
            }
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(GroupError::NotLeader(f.leader_node))
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(GroupError::NoQuorum(q.to_string()))
            }
            Err(RaftError::Fatal(fatal)) => Err(GroupError::Stopped(fatal.to_string())),
        }
    }

    /// The membership at which a leader removed this node from each group,
    /// as recorded in the log stores (it survives restarts).
    pub(super) fn departures(&self) -> Result<Vec<(GroupId, Option<LogId>)>, GroupsError> {
        let mut out = Vec::new();
        for (group, log) in self.logs.iter().enumerate() {
            let group = group as GroupId;
            if let Some(at) = log.departed().map_err(|e| GroupsError::Start { group, why: e.to_string() })? {
                out.push((group, at));
            }
        }
        Ok(out)
    }

    /// Records durably that a leader removed this node from `group` at
    /// membership `at`.
    pub(super) fn record_departure(&self, group: GroupId, at: &Option<LogId>) -> std::io::Result<()> {
        self.logs[group as usize].set_departed(at)
    }

    /// Stops every group, then writes what its log still holds in memory.
    pub async fn shutdown(&self) {
        for raft in self.rafts.iter() {
            let _ = raft.shutdown().await;
        }
        for (group, log) in self.logs.iter().enumerate() {
            if let Err(err) = log.flush_committed().await {
                tracing::warn!(group, error = %err, "cannot write the committed index on shutdown");
            }
        }
    }
}
