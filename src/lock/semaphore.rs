//! One sized lock: its holders, its queue and the rules between them.
//!
//! Invariants:
//! - `held` is the permits in use: the exclusive holders' permits, or 1
//!   while the lock has shared holders; it never exceeds `size`;
//! - shared holders exist only on a lock of size 1, never beside an
//!   exclusive holder, and at most `Limits::max_shared_holders` of them;
//! - a key is never both a holder and a waiter;
//! - a request is granted at once only when nobody is queued (no barging);
//!   whenever permits free up, head waiters are granted in the same step
//!   while they fit, and a head that does not fit blocks those behind it —
//!   so a queued exclusive request holds back later shared ones, and the
//!   shared requests at the head are granted together;
//! - `idle_since` is set exactly when there is no holder and no waiter;
//! - every grant takes fresh tokens from the group's counter; a downgrade
//!   keeps the holder's token and never leaves the lock free.

use serde::{Deserialize, Serialize};

use super::holders::{Holder, Holders};
use super::{
    AcquireCmd, Effect, EndReason, FenceCounter, Grant, Limits, LockError, LockKey, Mode, Name, Reply, Value, Values,
    WaitQueue, Waiter,
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
    pub limits: &'a Limits,
    pub fence: &'a mut FenceCounter,
    pub values: &'a mut Values,
    pub effects: &'a mut Vec<Effect>,
}

/// What a grant gives: to whom, how much, in which mode, for how long.
struct Ask<'a> {
    key: &'a LockKey,
    permits: u32,
    mode: Mode,
    ttl_ms: u64,
    value: Option<Value>,
}

impl Lock {
    pub fn new(size: u32) -> Self {
        Self { size, held: 0, holders: Holders::default(), waiters: WaitQueue::default(), idle_since: IdleSince::NONE }
    }

    /// A lock as an older snapshot format held it; `check` it after.
    pub(super) fn from_parts(
        size: u32,
        held: u32,
        holders: Holders,
        waiters: WaitQueue,
        idle_since: Option<u64>,
    ) -> Self {
        Self { size, held, holders, waiters, idle_since: IdleSince::from(idle_since) }
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

    /// The mode of the holders (all alike), or `None` when nobody holds.
    pub fn mode(&self) -> Option<Mode> {
        self.holders.values().next().map(|h| h.mode)
    }

    /// Whether a request for `permits` in `mode` fits beside the holders.
    fn fits(&self, mode: Mode, permits: u32, limits: &Limits) -> bool {
        match mode {
            Mode::Exclusive => self.size.saturating_sub(self.held) >= permits,
            Mode::Shared => {
                self.holders.is_empty()
                    || (self.mode() == Some(Mode::Shared) && self.holders.len() < limits.max_shared_holders)
            }
        }
    }

    /// The holder whose token range contains `token`, if any.
    pub fn holder_of_token(&self, token: u64) -> Option<(&LockKey, &Holder)> {
        self.holders.iter().find(|(_, h)| token >= h.token && token - h.token < u64::from(h.permits))
    }

    /// Grants, queues or refuses an acquire whose fields are already valid.
    pub(super) fn acquire(&mut self, cmd: &AcquireCmd, step: &mut Step<'_>) -> Result<Reply, LockError> {
        if !self.is_idle() && self.size != cmd.size {
            return Err(LockError::SizeMismatch { size: self.size, asked: cmd.size });
        }
        if let Some(reply) = self.retry(cmd, step)? {
            return Ok(reply);
        }
        if self.is_idle() {
            self.size = cmd.size;
        }
        if self.waiters.is_empty() && self.fits(cmd.mode, cmd.permits, step.limits) {
            let ask = Ask {
                key: &cmd.key,
                permits: cmd.permits,
                mode: cmd.mode,
                ttl_ms: cmd.ttl_ms,
                value: cmd.value.clone(),
            };
            return Ok(Reply::Granted(self.grant(ask, false, step)));
        }
        if cmd.wait_ms == 0 {
            return Err(LockError::Busy);
        }
        let max = step.limits.max_waiters_per_lock;
        if self.waiters.len() >= max {
            return Err(LockError::TooManyWaiters { max });
        }
        Ok(self.enqueue(cmd, step))
    }

    /// An acquire by a key that already holds or waits: the same answer
    /// again (a holder's lease is refreshed, its value kept), or `KeyInUse`
    /// (`ModeInUse`) if it asks for another number of permits (mode).
    fn retry(&mut self, cmd: &AcquireCmd, step: &mut Step<'_>) -> Result<Option<Reply>, LockError> {
        if let Some((held, mode)) = self.holders.get(&cmd.key).map(|h| (h.permits, h.mode)) {
            if held != cmd.permits {
                return Err(LockError::KeyInUse { held, asked: cmd.permits });
            }
            if mode != cmd.mode {
                return Err(LockError::ModeInUse { held: mode, asked: cmd.mode });
            }
            return self.refresh(&cmd.key, Some(cmd.ttl_ms), step).map(|g| Some(Reply::Granted(g)));
        }
        if let Some(waiter) = self.waiters.get(&cmd.key) {
            if waiter.permits != cmd.permits {
                return Err(LockError::KeyInUse { held: 0, asked: cmd.permits });
            }
            if waiter.mode != cmd.mode {
                return Err(LockError::ModeInUse { held: waiter.mode, asked: cmd.mode });
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
            mode: cmd.mode,
            ttl_ms: cmd.ttl_ms,
            wait_ms: cmd.wait_ms,
            enqueue_index: step.index,
            value: cmd.value.clone(),
        });
        self.idle_since = IdleSince::NONE;
        step.effects.push(Effect::Queued {
            name: step.name.clone(),
            key: cmd.key.clone(),
            permits: cmd.permits,
            mode: cmd.mode,
            wait_ms: cmd.wait_ms,
            enqueue_index: step.index,
        });
        Reply::Queued { position, enqueue_index: step.index }
    }

    fn grant(&mut self, ask: Ask<'_>, handoff: bool, step: &mut Step<'_>) -> Grant {
        let Ask { key, permits, mode, ttl_ms, value } = ask;
        let token = step.fence.issue(permits);
        // Shared holders use the lock's one permit together.
        if mode == Mode::Exclusive || self.holders.is_empty() {
            self.held += permits;
        }
        self.holders.insert(key.clone(), Holder { permits, mode, token, ttl_ms, lease_index: step.index });
        step.values.set(step.name, key, value.clone());
        self.idle_since = IdleSince::NONE;
        let grant = Grant { key: key.clone(), token, permits, mode, ttl_ms, lease_index: step.index, value };
        step.effects.push(Effect::Granted { name: step.name.clone(), grant: grant.clone(), handoff });
        grant
    }

    /// The hold of `key` as a grant, with the value it carries.
    fn grant_of(&self, key: &LockKey, holder: &Holder, step: &Step<'_>) -> Grant {
        Grant {
            key: key.clone(),
            token: holder.token,
            permits: holder.permits,
            mode: holder.mode,
            ttl_ms: holder.ttl_ms,
            lease_index: holder.lease_index,
            value: step.values.get(step.name, key).cloned(),
        }
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
        let holder = holder.clone();
        Ok(self.grant_of(key, &holder, step))
    }

    /// Changes the value `key` carries (`None` clears it).
    pub(super) fn set_value(
        &mut self,
        key: &LockKey,
        value: Option<Value>,
        step: &mut Step<'_>,
    ) -> Result<Grant, LockError> {
        let holder = self.holders.get(key).ok_or(LockError::NotHolder)?.clone();
        step.values.set(step.name, key, value.clone());
        let (name, token) = (step.name.clone(), holder.token);
        step.effects.push(Effect::ValueChanged { name, key: key.clone(), token, value });
        Ok(self.grant_of(key, &holder, step))
    }

    /// Turns the exclusive holder `key` shared: same key, token and lease,
    /// the lock held throughout; shared waiters at the head may now join.
    /// A shared holder is answered as it is (a retried downgrade).
    pub(super) fn downgrade(&mut self, key: &LockKey, step: &mut Step<'_>) -> Result<Grant, LockError> {
        let holder = self.holders.get_mut(key).ok_or(LockError::NotHolder)?;
        if self.size != 1 {
            return Err(LockError::SharedSemaphore { size: self.size });
        }
        if holder.mode == Mode::Exclusive {
            holder.mode = Mode::Shared;
            let (name, token) = (step.name.clone(), holder.token);
            step.effects.push(Effect::Downgraded { name, key: key.clone(), token });
        }
        let holder = holder.clone();
        self.hand_off(step);
        Ok(self.grant_of(key, &holder, step))
    }

    /// Takes `holder` out of `held`.
    fn free(&mut self, holder: &Holder) {
        if holder.mode == Mode::Exclusive || self.holders.is_empty() {
            self.held -= holder.permits;
        }
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
        let holder = holder.clone();
        self.holders.remove(key);
        self.free(&holder);
        hold_ended(key, &holder, reason, step);
        self.hand_off(step);
        Ok(())
    }

    /// Removes every holder (admin force-release) and returns how many.
    pub(super) fn end_all_holds(&mut self, step: &mut Step<'_>) -> u32 {
        let ended = self.holders.drain();
        self.held = 0;
        for (key, holder) in &ended {
            hold_ended(key, holder, EndReason::Forced, step);
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
            if !self.fits(head.mode, head.permits, step.limits) {
                break;
            }
            let Some(w) = self.waiters.pop_front() else {
                break;
            };
            let ask = Ask { key: &w.key, permits: w.permits, mode: w.mode, ttl_ms: w.ttl_ms, value: w.value };
            self.grant(ask, true, step);
        }
        if self.is_idle() {
            // The table turns this into an `Idle` or a `Removed` effect.
            self.idle_since = IdleSince(step.index);
        }
    }

    /// Checks the invariants of a lock read from a snapshot.
    pub(super) fn check(&self, next_token: u64) -> Result<(), String> {
        let shared = self.holders.values().filter(|h| h.mode == Mode::Shared).count();
        let sum: u64 = self.holders.values().map(|h| u64::from(h.permits)).sum();
        let in_use = if shared > 0 { 1 } else { sum };
        if in_use != u64::from(self.held) || self.held > self.size || self.size == 0 {
            return Err(format!("held {} of size {} but holders use {in_use}", self.held, self.size));
        }
        if shared > 0 && (shared != self.holders.len() || self.size != 1) {
            return Err("shared holders beside an exclusive one, or on a semaphore".into());
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

/// Says that the hold of `key` ended, and takes the value it carried.
fn hold_ended(key: &LockKey, holder: &Holder, reason: EndReason, step: &mut Step<'_>) {
    let value = step.values.take(step.name, key);
    step.effects.push(Effect::HoldEnded {
        name: step.name.clone(),
        key: key.clone(),
        token: holder.token,
        permits: holder.permits,
        mode: holder.mode,
        reason,
        value,
    });
}
