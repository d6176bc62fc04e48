//! The lock service every surface (gRPC, REST, ldlm) calls.
//!
//! Invariants:
//! - any node accepts any request: it computes the group, proposes through
//!   the local Raft when it leads the group, and otherwise forwards one hop
//!   to the leader; a forwarded node never forwards again;
//! - requests are validated here with the cluster's limits before anything
//!   is proposed, and again in apply;
//! - keys are chosen here (client's, or 128 random bits), never in apply, so
//!   a retried proposal is idempotent for acquire;
//! - a blocking acquire waits on this node; when its client goes away or its
//!   wait runs out, this node proposes `CancelWait`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::forward;
use super::keeper::Keeper;
use super::proposer::{refused, Proposer};
use super::read::{answer, LockRow, LockView, ReadAnswer, ReadQuery};
use super::sessions::{Hold, SessionId, Sessions};
use super::wait_guard::WaitGuard;
use super::waits::Waits;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::lock::{AcquireCmd, Command, Grant, LockKey, Reply};
use crate::metrics::Contention;
use crate::raft::membership::{MembershipChange, MembershipError};
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

    /// Releases `holds` in the background (their session ended).
    pub fn release_holds(self: &Arc<Self>, holds: Vec<Hold>) {
        for hold in holds {
            let service = self.clone();
            tokio::spawn(async move {
                if let Err(err) = service.release_unchecked(hold.name.clone(), hold.key.clone()).await {
                    if !err.code.means_not_held() {
                        tracing::warn!(error = %err, "releasing a grant of an ended session failed");
                    }
                }
            });
        }
    }

    /// One round of session upkeep: ends expired sessions and refreshes the
    /// leases of the holds that live sessions keep alive.
    pub fn session_tick(self: &Arc<Self>, now: Instant) {
        for id in self.sessions.expired(now) {
            let holds = self.sessions.close(id);
            self.release_holds(holds);
        }
        for hold in self.sessions.due_refreshes(now) {
            let service = self.clone();
            tokio::spawn(async move {
                let refreshed = service.refresh_unchecked(hold.name.clone(), hold.key.clone(), Some(hold.ttl_ms)).await;
                if refreshed.is_err_and(|e| e.code.means_not_held()) {
                    service.sessions.remove_hold(&hold.name, &hold.key);
                }
            });
        }
    }

    fn record_hold(&self, p: &AcquireParams, grant: &Grant) {
        if let Some((id, auto_refresh)) = p.session {
            let hold = Hold { name: p.name.clone(), key: grant.key.clone(), auto_refresh, ttl_ms: grant.ttl_ms };
            if self.sessions.add_hold(id, hold).is_err() {
                // The session ended while the acquire was in flight.
                tracing::debug!(session = id, "grant outlived its session; its lease will expire");
            }
        }
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

    fn meta(&self, group: GroupId, index: u64) -> Meta {
        Meta { group, node_id: self.groups.me(), index }
    }

    /// How long a request keeps retrying while its group has no leader.
    pub(super) fn retry_window(&self) -> Duration {
        self.proposer.retry_window()
    }

    pub fn proposer(&self) -> &Arc<Proposer> {
        &self.proposer
    }

    // ---- writes -------------------------------------------------------

    pub async fn acquire(self: &Arc<Self>, p: AcquireParams) -> Result<(Meta, Grant), ApiError> {
        self.admit()?;
        let limits = &self.config.limits;
        limits.check_name(&p.name)?;
        limits.check_size(p.size)?;
        limits.check_permits(p.permits, p.size)?;
        limits.check_ttl(p.ttl_ms)?;
        limits.check_wait(p.wait_ms)?;
        if let Some((id, _)) = p.session {
            self.sessions.check(id)?;
        }
        let group = self.group_of(&p.name);
        let started = Instant::now();
        let key = p.key.clone().unwrap_or_else(|| LockKey::from_u128(rand::random()));
        let cmd = Command::Acquire(AcquireCmd {
            name: p.name.clone(),
            key: key.clone(),
            size: p.size,
            permits: p.permits,
            ttl_ms: p.ttl_ms,
            wait_ms: p.wait_ms,
        });
        let mut wait = WaitGuard::register(self.clone(), group, &p.name, &key);
        let applied = self.proposer.propose(group, &cmd).await.0?;
        match applied.outcome.reply {
            Ok(Reply::Granted(grant)) => {
                wait.disarm();
                self.record_hold(&p, &grant);
                metrics::histogram!(crate::metrics::WAIT_DURATION).record(started.elapsed().as_secs_f64());
                Ok((self.meta(group, applied.index), grant))
            }
            Ok(Reply::Queued { .. }) => {
                wait.arm();
                let grant = wait.wait(Duration::from_millis(p.wait_ms)).await?;
                self.record_hold(&p, &grant);
                metrics::histogram!(crate::metrics::WAIT_DURATION).record(started.elapsed().as_secs_f64());
                Ok((self.meta(group, grant.lease_index), grant))
            }
            Ok(other) => Err(internal(format!("acquire answered {other:?}"))),
            Err(err) => {
                wait.disarm();
                Err(err.into())
            }
        }
    }

    /// Proposes `cmd` and expects `want` of its reply.
    async fn write<T>(
        &self,
        group: GroupId,
        cmd: Command,
        want: impl FnOnce(Reply) -> Option<T>,
    ) -> Result<(Meta, T), ApiError> {
        let applied = self.proposer.propose(group, &cmd).await.0?;
        let reply = applied.outcome.reply.map_err(ApiError::from)?;
        let shown = reply.clone();
        let value = want(reply).ok_or_else(|| internal(format!("{cmd} answered {shown:?}")))?;
        Ok((self.meta(group, applied.index), value))
    }

    pub async fn release(&self, name: String, key: LockKey) -> Result<Meta, ApiError> {
        self.admit()?;
        self.release_unchecked(name, key).await
    }

    /// Release on behalf of the node itself (ended sessions), also while draining.
    async fn release_unchecked(&self, name: String, key: LockKey) -> Result<Meta, ApiError> {
        self.config.limits.check_name(&name)?;
        let group = self.group_of(&name);
        self.sessions.remove_hold(&name, &key);
        let cmd = Command::Release { name, key };
        let (applied, retried) = self.proposer.propose(group, &cmd).await;
        let applied = applied?;
        match applied.outcome.reply.map_err(ApiError::from) {
            Ok(Reply::Released) => Ok(self.meta(group, applied.index)),
            // A retry found the key (or the emptied lock) gone: the first
            // attempt released it (or it ended meanwhile); either way the
            // caller no longer holds it, the rule the client applies to its
            // own retries.
            Err(err) if retried && err.code.means_not_held() => Ok(self.meta(group, applied.index)),
            Err(err) => Err(err),
            Ok(other) => Err(internal(format!("{cmd} answered {other:?}"))),
        }
    }

    pub async fn refresh(&self, name: String, key: LockKey, ttl_ms: Option<u64>) -> Result<(Meta, Grant), ApiError> {
        self.admit()?;
        self.refresh_unchecked(name, key, ttl_ms).await
    }

    /// Refresh on behalf of the node itself (session holds), also while draining.
    async fn refresh_unchecked(
        &self,
        name: String,
        key: LockKey,
        ttl_ms: Option<u64>,
    ) -> Result<(Meta, Grant), ApiError> {
        self.config.limits.check_name(&name)?;
        if let Some(ttl) = ttl_ms {
            self.config.limits.check_ttl(ttl)?;
        }
        let group = self.group_of(&name);
        let cmd = Command::Refresh { name, key, ttl_ms };
        self.write(group, cmd, |r| match r {
            Reply::Refreshed(grant) => Some(grant),
            _ => None,
        })
        .await
    }

    pub async fn force_release(&self, name: String, key: Option<LockKey>) -> Result<(Meta, u32), ApiError> {
        self.admit()?;
        self.config.limits.check_name(&name)?;
        let group = self.group_of(&name);
        let cmd = Command::ForceRelease { name, key };
        self.write(group, cmd, |r| match r {
            Reply::ForceReleased { holders } => Some(holders),
            _ => None,
        })
        .await
    }

    // ---- membership ---------------------------------------------------

    /// Applies `change` to `group` through its leader (one hop if need be),
    /// retrying while the group elects a leader.
    pub async fn change_membership(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        let router = self.groups.router();
        let remote = |leader| forward::change_membership(router, leader, group, change);
        self.proposer.on_leader(group, || self.change_membership_local(group, change), remote).await
    }

    /// One attempt on this node; `NotLeader` unless it leads the group.
    pub async fn change_membership_local(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        match self.groups.change_membership(group, change).await {
            Ok(()) => Ok(()),
            Err(MembershipError::NotLeader(leader)) => Err(ApiError::not_leader(leader.map(|n| n.client_addr))),
            Err(MembershipError::Failed(why)) => Err(ApiError::new(ErrorCode::Unavailable, format!("{why}: retry"))),
        }
    }

    /// Applies `change` to every group, a few at a time; returns how many.
    pub async fn change_membership_everywhere(&self, change: MembershipChange) -> Result<u32, ApiError> {
        use futures::StreamExt;
        let groups = 0..self.config.groups;
        let results: Vec<Result<(), ApiError>> = futures::stream::iter(groups)
            .map(|g| self.change_membership(g, &change))
            .buffer_unordered(8)
            .collect()
            .await;
        let done = results.iter().filter(|r| r.is_ok()).count() as u32;
        match results.into_iter().find_map(Result::err) {
            Some(err) => Err(ApiError::new(
                err.code,
                format!("{done} of {} groups changed; {}", self.config.groups, err.message),
            )),
            None => Ok(done),
        }
    }

    // ---- reads --------------------------------------------------------

    /// A linearizable read of `group`, on its leader (one hop if need be).
    pub async fn read(&self, group: GroupId, query: &ReadQuery) -> Result<(Meta, ReadAnswer), ApiError> {
        let router = self.groups.router();
        let remote = |leader| forward::read(router, leader, group, query);
        let (index, answer) = self.proposer.on_leader(group, || self.read_local(group, query), remote).await?;
        Ok((self.meta(group, index), answer))
    }

    /// One attempt on this node; `NotLeader` unless it leads the group.
    pub async fn read_local(&self, group: GroupId, query: &ReadQuery) -> Result<(u64, ReadAnswer), ApiError> {
        let index = self.groups.read_index(group).await.map_err(|e| refused(group, e))?;
        let state = self.groups.state(group);
        let ans = state.read(|table| answer(group, table, &self.keeper, query));
        Ok((index, ans))
    }

    pub async fn describe(&self, name: String) -> Result<(Meta, Option<LockView>), ApiError> {
        self.admit()?;
        self.config.limits.check_name(&name)?;
        let group = self.group_of(&name);
        match self.read(group, &ReadQuery::Describe { name }).await? {
            (meta, ReadAnswer::Describe(view)) => Ok((meta, view)),
            (_, other) => Err(internal(format!("describe answered {other:?}"))),
        }
    }

    pub async fn validate_fence(&self, name: String, token: u64) -> Result<(Meta, Option<LockKey>), ApiError> {
        self.admit()?;
        self.config.limits.check_name(&name)?;
        let group = self.group_of(&name);
        match self.read(group, &ReadQuery::ValidateFence { name, token }).await? {
            (meta, ReadAnswer::Fence(key)) => Ok((meta, key)),
            (_, other) => Err(internal(format!("validate_fence answered {other:?}"))),
        }
    }

    /// One page of locks whose names start with `prefix`, across all groups,
    /// in name order, after `after`. Returns the page and whether more follow.
    pub async fn list(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<LockRow>, bool), ApiError> {
        self.admit()?;
        let limit = limit.clamp(1, self.config.max_list_page as usize);
        let query = ReadQuery::List { prefix, after, limit: limit + 1 };
        let reads = (0..self.config.groups).map(|g| self.read(g, &query));
        let mut rows = Vec::new();
        for result in futures::future::join_all(reads).await {
            match result? {
                (_, ReadAnswer::List(mut page)) => rows.append(&mut page),
                (_, other) => return Err(internal(format!("list answered {other:?}"))),
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }
}
