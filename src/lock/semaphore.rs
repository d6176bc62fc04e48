//! One sized lock: its holders, its queue and the rules between them.
//!
//! Invariants:
//! - `held` is the sum of the holders' permits and never exceeds `size`;
//! - a key is never both a holder and a waiter;
//! - a request is granted at once only when nobody is queued (no barging);
//!   whenever permits free up, head waiters are granted in the same step
//!   while they fit, and a head that does not fit blocks those behind it;
//! - `idle_since` is set exactly when there is no holder and no waiter;
//! - every grant takes fresh tokens from the group's counter.

use serde::{Deserialize, Serialize};

use super::holders::{Holder, Holders};
use super::{
    AcquireCmd, Effect, EndReason, FenceCounter, Grant, Limits, LockError, LockKey, Name, Reply, WaitQueue, Waiter,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Fixed by the first acquirer while the lock is in use; an idle lock
    /// takes the size of its next acquirer.
    size: u32,
    /// Sum of the holders' permits, kept to avoid a scan per request.
    held: u32,
    holders: Holders,
    waiters: WaitQueue,
    /// Log index at which the lock last became idle, for GC after a grace.
    idle_since: IdleSince,
}

/// An `Option<u64>` log index in 8 bytes, not 16 (a table holds one per
/// lock): `u64::MAX`, which no log index reaches, stands for none. It
/// serialises as the `Option` it replaces, so snapshots read back alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Option<u64>", into = "Option<u64>")]
struct IdleSince(u64);

impl IdleSince {
    const NONE: Self = Self(u64::MAX);

    fn get(self) -> Option<u64> {
        (self != Self::NONE).then_some(self.0)
    }
}

impl From<Option<u64>> for IdleSince {
    fn from(index: Option<u64>) -> Self {
        index.map_or(Self::NONE, Self)
    }
}

impl From<IdleSince> for Option<u64> {
    fn from(idle: IdleSince) -> Self {
        idle.get()
    }
}

/// What one apply step needs besides the lock itself.
pub(super) struct Step<'a> {
    pub name: &'a Name,
    pub index: u64,
    pub fence: &'a mut FenceCounter,
    pub effects: &'a mut Vec<Effect>,
}

impl Lock {
    pub fn new(size: u32) -> Self {
        Self { size, held: 0, holders: Holders::default(), waiters: WaitQueue::default(), idle_since: IdleSince::NONE }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn held(&self) -> u32 {
        self.held
    }

    pub fn holders(&self) -> &Holders {
        &self.holders
    }

    pub fn waiters(&self) -> &WaitQueue {
        &self.waiters
    }

    pub fn idle_since(&self) -> Option<u64> {
        self.idle_since.get()
    }

    pub fn is_idle(&self) -> bool {
        self.holders.is_empty() && self.waiters.is_empty()
    }

    /// The holder whose token range contains `token`, if any.
    pub fn holder_of_token(&self, token: u64) -> Option<(&LockKey, &Holder)> {
        self.holders.iter().find(|(_, h)| token >= h.token && token - h.token < u64::from(h.permits))
    }

    /// Grants, queues or refuses an acquire whose fields are already valid.
    pub(super) fn acquire(
        &mut self,
        cmd: &AcquireCmd,
        limits: &Limits,
        step: &mut Step<'_>,
    ) -> Result<Reply, LockError> {
        if !self.is_idle() && self.size != cmd.size {
            return Err(LockError::SizeMismatch { size: self.size, asked: cmd.size });
        }
        if let Some(reply) = self.retry(cmd, step)? {
            return Ok(reply);
        }
        if self.is_idle() {
            self.size = cmd.size;
        }
        let fits = self.size.saturating_sub(self.held) >= cmd.permits;
        if self.waiters.is_empty() && fits {
            let grant = self.grant(&cmd.key, cmd.permits, cmd.ttl_ms, false, step);
            return Ok(Reply::Granted(grant));
        }
        if cmd.wait_ms == 0 {
            return Err(LockError::Busy);
        }
        if self.waiters.len() >= limits.max_waiters_per_lock {
            return Err(LockError::TooManyWaiters { max: limits.max_waiters_per_lock });
        }
        Ok(self.enqueue(cmd, step))
    }

    /// An acquire by a key that already holds or waits: the same answer
    /// again (a holder's lease is refreshed), or `KeyInUse` if it asks for
    /// a different number of permits.
    fn retry(&mut self, cmd: &AcquireCmd, step: &mut Step<'_>) -> Result<Option<Reply>, LockError> {
        if let Some(held) = self.holders.get(&cmd.key).map(|h| h.permits) {
            if held != cmd.permits {
                return Err(LockError::KeyInUse { held, asked: cmd.permits });
            }
            return self.refresh(&cmd.key, Some(cmd.ttl_ms), step).map(|g| Some(Reply::Granted(g)));
        }
        if let Some(waiter) = self.waiters.get(&cmd.key) {
            if waiter.permits != cmd.permits {
                return Err(LockError::KeyInUse { held: 0, asked: cmd.permits });
            }
            let position = self.waiters.position(&cmd.key).unwrap_or(0) as u32;
            let enqueue_index = waiter.enqueue_index;
            return Ok(Some(Reply::Queued { position, enqueue_index }));
        }
        Ok(None)
    }

    fn enqueue(&mut self, cmd: &AcquireCmd, step: &mut Step<'_>) -> Reply {
        let position = self.waiters.len() as u32;
        self.waiters.push(Waiter {
            key: cmd.key.clone(),
            permits: cmd.permits,
            ttl_ms: cmd.ttl_ms,
            wait_ms: cmd.wait_ms,
            enqueue_index: step.index,
        });
        self.idle_since = IdleSince::NONE;
        step.effects.push(Effect::Queued {
            name: step.name.clone(),
            key: cmd.key.clone(),
            permits: cmd.permits,
            wait_ms: cmd.wait_ms,
            enqueue_index: step.index,
        });
        Reply::Queued { position, enqueue_index: step.index }
    }

    fn grant(&mut self, key: &LockKey, permits: u32, ttl_ms: u64, handoff: bool, step: &mut Step<'_>) -> Grant {
        let token = step.fence.issue(permits);
        let holder = Holder { permits, token, ttl_ms, lease_index: step.index };
        self.holders.insert(key.clone(), holder);
        self.held += permits;
        self.idle_since = IdleSince::NONE;
        let grant = Grant { key: key.clone(), token, permits, ttl_ms, lease_index: step.index };
        step.effects.push(Effect::Granted { name: step.name.clone(), grant: grant.clone(), handoff });
        grant
    }

    /// Extends the lease of `key`; the lease now runs from this step.
    pub(super) fn refresh(
        &mut self,
        key: &LockKey,
        ttl_ms: Option<u64>,
        step: &mut Step<'_>,
    ) -> Result<Grant, LockError> {
        let holder = self.holders.get_mut(key).ok_or(LockError::NotHolder)?;
        let ttl_ms = ttl_ms.unwrap_or(holder.ttl_ms);
        holder.ttl_ms = ttl_ms;
        holder.lease_index = step.index;
        step.effects.push(Effect::Refreshed {
            name: step.name.clone(),
            key: key.clone(),
            token: holder.token,
            ttl_ms,
            lease_index: step.index,
        });
        let h = holder.clone();
        Ok(Grant { key: key.clone(), token: h.token, permits: h.permits, ttl_ms, lease_index: h.lease_index })
    }

    /// Ends the hold of `key`, if `lease_index` (when given) still names its
    /// lease, then hands the freed permits to the head of the queue.
    pub(super) fn end_hold(
        &mut self,
        key: &LockKey,
        lease_index: Option<u64>,
        reason: EndReason,
        step: &mut Step<'_>,
    ) -> Result<(), LockError> {
        let holder = self.holders.get(key).ok_or(LockError::NotHolder)?;
        if lease_index.is_some_and(|at| at != holder.lease_index) {
            return Err(LockError::StaleExpiry);
        }
        let (permits, token) = (holder.permits, holder.token);
        self.holders.remove(key);
        self.held -= permits;
        let (name, key) = (step.name.clone(), key.clone());
        step.effects.push(Effect::HoldEnded { name, key, token, permits, reason });
        self.hand_off(step);
        Ok(())
    }

    /// Removes every holder (admin force-release) and returns how many.
    pub(super) fn end_all_holds(&mut self, step: &mut Step<'_>) -> u32 {
        let ended = self.holders.drain();
        for (key, holder) in &ended {
            self.held -= holder.permits;
            let (permits, token, reason) = (holder.permits, holder.token, EndReason::Forced);
            let (name, key) = (step.name.clone(), key.clone());
            step.effects.push(Effect::HoldEnded { name, key, token, permits, reason });
        }
        self.hand_off(step);
        ended.len() as u32
    }

    /// Takes `key` out of the queue, if `enqueue_index` (when given) still
    /// names its wait; the waiters behind it may now fit.
    pub(super) fn end_wait(
        &mut self,
        key: &LockKey,
        enqueue_index: Option<u64>,
        reason: EndReason,
        step: &mut Step<'_>,
    ) -> Result<(), LockError> {
        let waiter = self.waiters.get(key).ok_or(LockError::NotWaiting)?;
        if enqueue_index.is_some_and(|at| at != waiter.enqueue_index) {
            return Err(LockError::NotWaiting);
        }
        self.waiters.remove(key);
        step.effects.push(Effect::WaitEnded { name: step.name.clone(), key: key.clone(), reason });
        self.hand_off(step);
        Ok(())
    }

    /// Grants head waiters while they fit, then notes idleness.
    fn hand_off(&mut self, step: &mut Step<'_>) {
        while let Some(head) = self.waiters.front() {
            if self.size.saturating_sub(self.held) < head.permits {
                break;
            }
            let Some(w) = self.waiters.pop_front() else {
                break;
            };
            self.grant(&w.key, w.permits, w.ttl_ms, true, step);
        }
        if self.is_idle() {
            // The table turns this into an `Idle` or a `Removed` effect.
            self.idle_since = IdleSince(step.index);
        }
    }

    /// Checks the invariants of a lock read from a snapshot.
    pub(super) fn check(&self, next_token: u64) -> Result<(), String> {
        let sum: u64 = self.holders.values().map(|h| u64::from(h.permits)).sum();
        if sum != u64::from(self.held) || self.held > self.size || self.size == 0 {
            return Err(format!("held {} of size {} but holders sum to {sum}", self.held, self.size));
        }
        if self.holders.values().any(|h| h.token.saturating_add(u64::from(h.permits)) > next_token) {
            return Err("a holder's token is not below the group's next token".into());
        }
        if self.waiters.iter().any(|w| self.holders.contains_key(&w.key)) {
            return Err("a key is both holder and waiter".into());
        }
        if self.is_idle() != self.idle_since.get().is_some() {
            return Err("idle_since disagrees with holders and waiters".into());
        }
        Ok(())
    }
}
