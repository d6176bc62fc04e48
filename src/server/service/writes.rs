//! Lock writes: each validates against `[limits]`, then proposes one
//! command through the Proposer and reads its reply.
//!
//! Invariants: keys are chosen here (the client's, or 128 random bits),
//! never in apply, so a retried acquire is idempotent; a blocking acquire
//! waits on this node, or, when this node holds no replica of the lock's
//! group, on one that does (`acquire_elsewhere`), and proposes `CancelWait`
//! when abandoned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{internal, AcquireParams, LockService, Meta};
use crate::error::ApiError;
use crate::lock::{AcquireCmd, Command, Grant, LockKey, Reply};
use crate::routing::GroupId;
use crate::server::forward;
use crate::server::wait_guard::WaitGuard;

impl LockService {
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
        let cmd = AcquireCmd {
            name: p.name.clone(),
            key,
            size: p.size,
            permits: p.permits,
            ttl_ms: p.ttl_ms,
            wait_ms: p.wait_ms,
        };
        let (meta, grant) = if p.wait_ms > 0 && !self.groups.hosts(group) {
            // No replica here to learn of the grant: the wait runs where one is.
            self.acquire_elsewhere(group, &cmd).await?
        } else {
            self.acquire_here(group, cmd).await?
        };
        self.record_hold(&p, &grant);
        metrics::histogram!(crate::metrics::WAIT_DURATION).record(started.elapsed().as_secs_f64());
        Ok((meta, grant))
    }

    /// Proposes `cmd` and, if it queues, waits on this node for its grant.
    async fn acquire_here(self: &Arc<Self>, group: GroupId, cmd: AcquireCmd) -> Result<(Meta, Grant), ApiError> {
        let mut wait = WaitGuard::register(self.clone(), group, &cmd.name, &cmd.key);
        let wait_ms = cmd.wait_ms;
        let applied = self.proposer.propose(group, &Command::Acquire(cmd)).await.0?;
        match applied.outcome.reply {
            Ok(Reply::Granted(grant)) => {
                wait.disarm();
                Ok((self.meta(group, applied.index), grant))
            }
            Ok(Reply::Queued { .. }) => {
                wait.arm();
                let grant = wait.wait(Duration::from_millis(wait_ms)).await?;
                Ok((self.meta(group, grant.lease_index), grant))
            }
            Ok(other) => Err(internal(format!("acquire answered {other:?}"))),
            Err(err) => {
                wait.disarm();
                Err(err.into())
            }
        }
    }

    /// A blocking acquire of a group this node holds no replica of: the
    /// whole wait runs on a node that does (its leader when known), which
    /// answers when it grants. Dropping it (the client went away) proposes
    /// `CancelWait`; the serving node cancels on its own if this node's
    /// connection to it drops.
    async fn acquire_elsewhere(self: &Arc<Self>, group: GroupId, cmd: &AcquireCmd) -> Result<(Meta, Grant), ApiError> {
        let mut cancel = WaitGuard::register(self.clone(), group, &cmd.name, &cmd.key);
        cancel.arm();
        let router = self.groups.router();
        let not_here = || async { Err(ApiError::not_leader(None)) };
        let result = self.proposer.on_leader(group, not_here, |node| forward::acquire(router, node, group, cmd)).await;
        cancel.disarm();
        let (index, grant) = result?;
        Ok((self.meta(group, index), grant))
    }

    /// Serves a blocking acquire forwarded by a node that holds no replica
    /// of `group` (which checked it against the limits); refuses
    /// (retryably) unless this node holds one.
    pub async fn acquire_forwarded(
        self: &Arc<Self>,
        group: GroupId,
        cmd: AcquireCmd,
    ) -> Result<(u64, Grant), ApiError> {
        self.admit()?;
        if !self.groups.hosts(group) {
            return Err(ApiError::not_leader(None));
        }
        let (meta, grant) = self.acquire_here(group, cmd).await?;
        Ok((meta.index, grant))
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
    pub(super) async fn release_unchecked(&self, name: String, key: LockKey) -> Result<Meta, ApiError> {
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
    pub(super) async fn refresh_unchecked(
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
}
