//! The request path: what every surface (gRPC, REST, ldlm) calls, from the
//! decoded request to the group's log and back.
//!
//! - [`ops`]: one file per call — its request type (defaults and limits
//!   checked once), its one conversion into a lock command, its answer;
//! - this module: the [`LockService`] the calls run against: admission,
//!   writes routed to the group's leader, linearizable reads;
//! - [`routing`]: to the group's leader, one hop at most, with retries;
//! - [`batcher`]: a leader's commands gathered into entries;
//! - [`forward`]: one-hop forwarding, [`forward::call`] and
//!   [`forward::serve`];
//! - [`query`]: the linearizable read queries and their answers;
//! - [`waits`], [`wait`]: blocking acquires waiting on this node;
//! - [`effects`]: what each apply's effects do on this node;
//! - [`watch`]: the events of applied entries, kept and fed to watchers;
//! - [`errors`]: the request path's own refusals.
//!
//! Invariants:
//! - any node accepts any request: it computes the group, proposes through
//!   its own Raft when it leads the group, and otherwise forwards one hop
//!   to the leader; a forwarded node never forwards again;
//! - requests are checked against the cluster's limits before anything is
//!   proposed (in their op), and again in apply;
//! - keys are chosen before proposing (the client's, or 128 random bits),
//!   never in apply, so a retried acquire is idempotent;
//! - a draining node refuses new requests with a retryable `DRAINING`.

pub mod batcher;
pub mod effects;
pub mod errors;
pub mod forward;
pub mod ops;
pub mod query;
pub mod routing;
pub mod wait;
pub mod waits;
pub mod watch;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use self::batcher::Applied;
use self::errors::{draining, refused, removed, unavailable};
use self::query::{answer, ReadAnswer, ReadQuery};
use self::routing::Routing;
use self::waits::Waits;
use self::watch::History;
use crate::config::Config;
use crate::error::ApiError;
use crate::lock::{Command, Outcome};
use crate::metrics::Contention;
use crate::raft::membership::{self, MembershipChange, MembershipError};
use crate::raft::{Cluster, Groups, NodeId};
use crate::routing::{group_of, GroupId};
use crate::storage::syncer::Syncer;
use crate::upkeep::keeper::Keeper;
use crate::upkeep::sessions::Sessions;
use crate::upkeep::Propose;

/// Where an answer came from (the response header of the API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub group: GroupId,
    pub node_id: NodeId,
    pub index: u64,
}

/// What the service is built from (the node wires it).
pub struct Parts {
    pub cluster: Arc<Cluster>,
    pub config: Arc<Config>,
    pub waits: Arc<Waits>,
    pub keeper: Arc<Keeper>,
    pub sessions: Arc<Sessions>,
    pub contention: Arc<Contention>,
    pub history: Arc<History>,
    pub syncer: Syncer,
}

pub struct LockService {
    cluster: Arc<Cluster>,
    config: Arc<Config>,
    /// Every write and every routed read goes through it.
    routing: Arc<Routing>,
    waits: Arc<Waits>,
    keeper: Arc<Keeper>,
    sessions: Arc<Sessions>,
    contention: Arc<Contention>,
    history: Arc<History>,
    /// Watch and Observe streams open on this node.
    watches: Arc<AtomicUsize>,
    syncer: Syncer,
    /// Set once when the node starts draining; new requests are refused.
    draining: AtomicBool,
}

impl LockService {
    pub fn new(parts: Parts) -> Arc<Self> {
        let Parts { cluster, config, waits, keeper, sessions, contention, history, syncer } = parts;
        let retry_window = Duration::from_millis(config.raft.election_timeout_max_ms * 4);
        let routing = Arc::new(Routing::new(cluster.clone(), retry_window));
        let (draining, watches) = (AtomicBool::new(false), Arc::new(AtomicUsize::new(0)));
        let service =
            Self { cluster, config, routing, waits, keeper, sessions, contention, history, watches, syncer, draining };
        Arc::new(service)
    }

    /// Refuses new requests and answers local waiters with `DRAINING`, so
    /// clients retry elsewhere (with the same key: they keep their place).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.waits.fail_all(&draining());
    }

    /// Fails with `DRAINING` once the node is shutting down, and with a
    /// retryable error naming the cluster's nodes once it was removed.
    pub fn admit(&self) -> Result<(), ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(draining());
        }
        if self.cluster.removed() {
            return Err(removed(&self.cluster));
        }
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn groups(&self) -> &Arc<Groups> {
        self.cluster.groups()
    }

    pub fn routing(&self) -> &Arc<Routing> {
        &self.routing
    }

    pub fn waits(&self) -> &Arc<Waits> {
        &self.waits
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn contention(&self) -> &Contention {
        &self.contention
    }

    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// The count of open watch streams (`max_watches` bounds it).
    pub fn watches(&self) -> &Arc<AtomicUsize> {
        &self.watches
    }

    /// WAL syncs done and log writes they covered, since start.
    pub fn syncer_stats(&self) -> (u64, u64) {
        let stats = self.syncer.stats();
        (stats.syncs.load(Ordering::Relaxed), stats.synced_writes.load(Ordering::Relaxed))
    }

    pub fn group_of(&self, name: &str) -> GroupId {
        group_of(name.as_bytes(), self.config.groups)
    }

    pub fn meta(&self, group: GroupId, index: u64) -> Meta {
        Meta { group, node_id: self.cluster.me(), index }
    }

    /// Proposes `cmd` on `group`'s leader (one hop if need be).
    pub async fn write(&self, group: GroupId, cmd: &Command) -> Result<Applied, ApiError> {
        self.routing.propose(group, cmd).await
    }

    /// A linearizable read of `group`, on its leader (one hop if need be).
    pub async fn read(&self, group: GroupId, query: &ReadQuery) -> Result<(Meta, ReadAnswer), ApiError> {
        let router = self.cluster.router();
        let remote = |leader| forward::call::read(router, leader, group, query);
        let (index, answer) = self.routing.on_leader(group, || self.read_local(group, query), remote).await?;
        Ok((self.meta(group, index), answer))
    }

    /// One read attempt on this node; `NotLeader` unless it leads the group.
    pub async fn read_local(&self, group: GroupId, query: &ReadQuery) -> Result<(u64, ReadAnswer), ApiError> {
        let index = self.groups().read_index(group).await.map_err(|e| refused(group, e))?;
        // The index the answer reflects (at least the read index).
        let (ans, applied) = self.groups().state(group).read_at(|table| answer(group, table, &self.keeper, query));
        Ok((applied.max(index), ans))
    }

    /// Applies `change` to `group` through its leader (one hop if need be),
    /// retrying while the group elects a leader.
    pub async fn change_membership(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        let router = self.cluster.router();
        let remote = |leader| forward::call::change_membership(router, leader, group, change);
        self.routing.on_leader(group, || self.change_membership_local(group, change), remote).await
    }

    /// One membership change attempt on this node; `NotLeader` unless it
    /// leads the group.
    pub async fn change_membership_local(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        match membership::change(&self.cluster, group, change).await {
            Ok(()) => Ok(()),
            Err(MembershipError::NotLeader(leader)) => Err(ApiError::not_leader(leader.map(|n| n.client_addr))),
            Err(MembershipError::Failed(why)) => Err(unavailable(why)),
        }
    }
}

/// Upkeep's commands ride the request path: batched on the leader,
/// routed to it from elsewhere.
impl Propose for LockService {
    fn propose_here(&self, group: GroupId, cmd: Command) -> BoxFuture<'_, Result<Outcome, ApiError>> {
        Box::pin(async move { Ok(self.routing.batcher().propose_local(group, cmd).await?.outcome) })
    }

    fn propose(&self, group: GroupId, cmd: Command) -> BoxFuture<'_, Result<Outcome, ApiError>> {
        Box::pin(async move { Ok(self.routing.propose(group, &cmd).await?.outcome) })
    }
}
