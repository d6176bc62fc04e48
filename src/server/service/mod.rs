//! The lock service every surface (gRPC, REST, ldlm) calls.
//!
//! - this module: the service, draining and what it is built from;
//! - [`writes`]: acquire, release, refresh, force-release;
//! - [`reads`]: describe, validate-fence, list (linearizable);
//! - [`membership`]: nodes joining and leaving, voter changes of a group;
//! - [`upkeep`]: what the node does for sessions (refreshes, releases).
//!
//! Invariants:
//! - any node accepts any request: it computes the group, proposes through
//!   the local Raft when it leads the group, and otherwise forwards one hop
//!   to the leader; a forwarded node never forwards again;
//! - requests are validated here with the cluster's limits before anything
//!   is proposed, and again in apply;
//! - keys are chosen here (client's, or 128 random bits), never in apply, so
//!   a retried proposal is idempotent for acquire;
//! - a blocking acquire waits on this node, or on a node holding the lock's
//!   group when this one holds none; when its client goes away or its wait
//!   runs out, `CancelWait` is proposed.

mod membership;
mod reads;
mod upkeep;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use super::keeper::Keeper;
use super::proposer::Proposer;
use super::sessions::{SessionId, Sessions};
use super::waits::Waits;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::metrics::Contention;
use crate::raft::{Groups, NodeId};
use crate::routing::{group_of, GroupId};
use crate::storage::syncer::Syncer;

/// Where an answer came from (the response header of the API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub group: GroupId,
    pub node_id: NodeId,
    pub index: u64,
}

pub use super::proposer::Applied;

/// An acquire as the surfaces hand it over, defaults already filled in.
#[derive(Clone, Debug)]
pub struct AcquireParams {
    pub name: String,
    pub key: Option<LockKey>,
    pub size: u32,
    pub permits: u32,
    pub ttl_ms: u64,
    pub wait_ms: u64,
    /// Session to hold the grant under, and whether the node keeps its lease
    /// alive while the session lives (ldlm locks with a timeout: no).
    pub session: Option<(SessionId, bool)>,
}

pub struct LockService {
    groups: Arc<Groups>,
    waits: Arc<Waits>,
    keeper: Arc<Keeper>,
    config: Arc<Config>,
    syncer: Syncer,
    sessions: Arc<Sessions>,
    contention: Arc<Contention>,
    /// Set once when the node starts draining; new requests are refused.
    draining: std::sync::atomic::AtomicBool,
    /// Every write and every routed read goes through it.
    proposer: Arc<Proposer>,
}

fn draining() -> ApiError {
    ApiError::new(ErrorCode::Draining, "this node is shutting down: retry on another node")
}

pub(super) fn internal(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, format!("internal error: {what}; see the server log"))
}

impl LockService {
    pub fn new(
        groups: Arc<Groups>,
        waits: Arc<Waits>,
        keeper: Arc<Keeper>,
        config: Arc<Config>,
        syncer: Syncer,
        contention: Arc<Contention>,
    ) -> Self {
        let sessions = Arc::new(Sessions::new(config.max_sessions));
        let draining = std::sync::atomic::AtomicBool::new(false);
        let retry_window = Duration::from_millis(config.raft.election_timeout_max_ms * 4);
        let proposer = Proposer::new(groups.clone(), retry_window);
        Self { groups, waits, keeper, config, syncer, sessions, contention, draining, proposer }
    }

    /// Refuses new requests and answers local waiters with `DRAINING`, so
    /// clients retry elsewhere (with the same key: they keep their place).
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        self.waits.fail_all(&draining());
    }

    /// Fails with `DRAINING` once the node is shutting down.
    pub fn admit(&self) -> Result<(), ApiError> {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(draining());
        }
        Ok(())
    }

    /// The `n` lock names that queued most often (every node applies every
    /// entry, so any node answers for the whole cluster since it started).
    pub fn most_contended(&self, n: usize) -> Vec<(String, u64)> {
        self.contention.top(n)
    }

    pub(super) fn waits(&self) -> &Waits {
        &self.waits
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// WAL syncs done and log writes they covered, since start.
    pub fn syncer_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.syncer.stats();
        (stats.syncs.load(Relaxed), stats.synced_writes.load(Relaxed))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    pub fn group_of(&self, name: &str) -> GroupId {
        group_of(name.as_bytes(), self.config.groups)
    }

    pub(super) fn meta(&self, group: GroupId, index: u64) -> Meta {
        Meta { group, node_id: self.groups.me(), index }
    }

    /// How long a request keeps retrying while its group has no leader.
    pub(super) fn retry_window(&self) -> Duration {
        self.proposer.retry_window()
    }

    pub fn proposer(&self) -> &Arc<Proposer> {
        &self.proposer
    }
}
