//! The locks of one Raft group and the `apply` function every replica runs.
//!
//! Invariants: `apply` is deterministic and total — the same commands at the
//! same log indexes give the same outcomes and state on every replica, and
//! no input panics. Every command is validated again here (the edge already
//! did) so that a bad entry can only be refused, never stored. A refused
//! command changes nothing. Locks are kept in name order for listing. Under
//! [`Rules::V2`] (the current rules) a lock exists only while it has a holder
//! or a waiter: the apply that empties it deletes it.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::semaphore::Step;
use super::{AcquireCmd, Command, EndReason, FenceCounter, Limits, Lock, LockError, Outcome, Reply};
use super::{Effect, Holder, LockKey, Mode, Name, Rules, SnapshotError, TableSnapshot, Value, Values};

/// Where an apply step runs: the entry's rules and log index.
#[derive(Clone, Copy)]
struct At {
    rules: Rules,
    index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockTable {
    limits: Limits,
    fence: FenceCounter,
    locks: BTreeMap<Name, Lock>,
    /// The holders' values, by lock and key.
    values: Values,
}

/// One row of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockSummary {
    pub name: String,
    pub size: u32,
    pub held: u32,
    pub holders: usize,
    pub waiters: usize,
    /// The holders' mode, `None` when nobody holds.
    pub mode: Option<Mode>,
    /// The values holders carry, by key.
    pub values: Vec<(LockKey, Value)>,
}

impl LockTable {
    pub fn new(limits: Limits) -> Self {
        Self { limits, fence: FenceCounter::default(), locks: BTreeMap::new(), values: Values::default() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies the command committed at `index` under the current rules and
    /// says what happened.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Outcome {
        self.apply_under(Rules::CURRENT, index, cmd)
    }

    /// Applies the command committed at `index` under `rules` (those of the
    /// entry that carries it).
    pub fn apply_under(&mut self, rules: Rules, index: u64, cmd: &Command) -> Outcome {
        let mut effects = Vec::new();
        let reply = self.dispatch(rules, index, cmd, &mut effects);
        match reply {
            Ok(reply) => Outcome { reply: Ok(reply), effects },
            Err(err) => Outcome::refused(err),
        }
    }

    fn dispatch(&mut self, rules: Rules, index: u64, cmd: &Command, fx: &mut Vec<Effect>) -> Result<Reply, LockError> {
        self.limits.check_name(cmd.name())?;
        let at = At { rules, index };
        match cmd {
            Command::Acquire(a) => self.acquire(index, a, fx),
            Command::AcquireV1(a) => self.acquire(index, &AcquireCmd::from(a), fx),
            Command::Release { name, key } => self
                .with_lock(name, at, fx, |lock, step| lock.end_hold(key, None, EndReason::Released, step))
                .map(|()| Reply::Released),
            Command::Refresh { name, key, ttl_ms } => {
                if let Some(ttl_ms) = ttl_ms {
                    self.limits.check_ttl(*ttl_ms)?;
                }
                self.with_lock(name, at, fx, |lock, step| lock.refresh(key, *ttl_ms, step)).map(Reply::Refreshed)
            }
            Command::Expire { name, key, lease_index } => self
                .with_lock(name, at, fx, |lock, step| lock.end_hold(key, Some(*lease_index), EndReason::Expired, step))
                .map(|()| Reply::Expired),
            Command::WaitTimeout { name, key, enqueue_index } => self
                .with_lock(name, at, fx, |lock, step| {
                    lock.end_wait(key, Some(*enqueue_index), EndReason::TimedOut, step)
                })
                .map(|()| Reply::WaitEnded),
            Command::CancelWait { name, key } => self
                .with_lock(name, at, fx, |lock, step| lock.end_wait(key, None, EndReason::Cancelled, step))
                .map(|()| Reply::WaitEnded),
            Command::ForceRelease { name, key } => self.force_release(at, name, key.as_ref(), fx),
            Command::GcIdle { name, idle_since } => self.gc(name, *idle_since, fx),
            Command::SetValue { name, key, value } => {
                self.limits.check_value(value.as_ref())?;
                self.with_lock(name, at, fx, |lock, step| lock.set_value(key, value.clone(), step)).map(Reply::ValueSet)
            }
            Command::Downgrade { name, key } => {
                self.with_lock(name, at, fx, |lock, step| lock.downgrade(key, step)).map(Reply::Downgraded)
            }
        }
    }

    fn acquire(&mut self, index: u64, cmd: &AcquireCmd, effects: &mut Vec<Effect>) -> Result<Reply, LockError> {
        self.limits.check_size(cmd.size)?;
        self.limits.check_permits(cmd.permits, cmd.size)?;
        self.limits.check_ttl(cmd.ttl_ms)?;
        self.limits.check_wait(cmd.wait_ms)?;
        self.limits.check_mode(cmd.mode, cmd.size)?;
        self.limits.check_value(cmd.value.as_ref())?;
        let known = self.locks.get_key_value(cmd.name.as_str()).map(|(name, _)| name.clone());
        let created = known.is_none();
        let name = known.unwrap_or_else(|| Name::from(cmd.name.as_str()));
        let lock = self.locks.entry(name.clone()).or_insert_with(|| Lock::new(cmd.size));
        let (limits, fence, values) = (&self.limits, &mut self.fence, &mut self.values);
        let mut step = Step { name: &name, index, limits, fence, values, effects };
        let reply = lock.acquire(cmd, &mut step);
        if reply.is_err() && created {
            self.locks.remove(cmd.name.as_str());
        }
        reply
    }

    fn force_release(
        &mut self,
        at: At,
        name: &str,
        key: Option<&LockKey>,
        effects: &mut Vec<Effect>,
    ) -> Result<Reply, LockError> {
        self.with_lock(name, at, effects, |lock, step| match key {
            Some(key) => lock.end_hold(key, None, EndReason::Forced, step).map(|()| 1),
            None => Ok(lock.end_all_holds(step)),
        })
        .map(|holders| Reply::ForceReleased { holders })
    }

    fn gc(&mut self, name: &str, idle_since: u64, effects: &mut Vec<Effect>) -> Result<Reply, LockError> {
        let lock = self.locks.get(name).ok_or(LockError::NotFound)?;
        if lock.idle_since() != Some(idle_since) {
            return Err(LockError::NotIdle);
        }
        let (name, _) = self.locks.remove_entry(name).ok_or(LockError::NotFound)?;
        effects.push(Effect::Removed { name });
        Ok(Reply::Collected)
    }

    /// Runs `f` on the lock `name`, which must exist. `f` must leave the lock unchanged
    /// when it refuses; every mutator in `semaphore` checks before it
    /// changes anything. A lock that `f` emptied becomes idle under
    /// [`Rules::V1`] and is deleted under [`Rules::V2`].
    fn with_lock<T>(
        &mut self,
        name: &str,
        at: At,
        effects: &mut Vec<Effect>,
        f: impl FnOnce(&mut Lock, &mut Step<'_>) -> Result<T, LockError>,
    ) -> Result<T, LockError> {
        let shared = self.locks.get_key_value(name).map(|(n, _)| n.clone()).ok_or(LockError::NotFound)?;
        let lock = self.locks.get_mut(name).ok_or(LockError::NotFound)?;
        let (limits, fence, values) = (&self.limits, &mut self.fence, &mut self.values);
        let mut step = Step { name: &shared, index: at.index, limits, fence, values, effects };
        let value = f(lock, &mut step)?;
        // Only a mutator's hand-off leaves a lock idle after a success.
        if lock.is_idle() {
            if at.rules.collects_in_apply() {
                self.locks.remove(name);
                effects.push(Effect::Removed { name: shared });
            } else {
                effects.push(Effect::Idle { name: shared, since: at.index });
            }
        }
        Ok(value)
    }

    /// The lock `name`, if it exists (idle locks exist until collected).
    pub fn get(&self, name: &str) -> Option<&Lock> {
        self.locks.get(name)
    }

    /// Every lock, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &Lock)> {
        self.locks.iter()
    }

    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    /// Up to `limit` locks whose names start with `prefix`, in name order,
    /// strictly after `after` when given (the previous page's last name).
    pub fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<LockSummary> {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.locks
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .take(limit)
            .map(|(name, lock)| LockSummary {
                name: name.to_string(),
                size: lock.size(),
                held: lock.held(),
                holders: lock.holders().len(),
                waiters: lock.waiters().len(),
                mode: lock.mode(),
                values: self.values.of_lock(name).map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
            .collect()
    }

    /// The value holder `key` of lock `name` carries, if any.
    pub fn value_of(&self, name: &str, key: &LockKey) -> Option<&Value> {
        self.values.get(name, key)
    }

    /// The live holder of lock `name` that owns fencing token `token`.
    pub fn validate_fence(&self, name: &str, token: u64) -> Option<(&LockKey, &Holder)> {
        self.locks.get(name)?.holder_of_token(token)
    }

    /// The token the next grant in this group will start at.
    pub fn next_token(&self) -> u64 {
        self.fence.peek()
    }

    /// The serialisable image of this table (limits are configuration).
    pub fn snapshot(&self) -> TableSnapshot {
        TableSnapshot::new(self.fence.clone(), self.locks.clone(), self.values.clone())
    }

    /// Rebuilds a table from a snapshot, checking its invariants.
    pub fn restore(snapshot: TableSnapshot, limits: Limits) -> Result<Self, SnapshotError> {
        let (fence, locks, values) = snapshot.into_parts()?;
        for (name, lock) in &locks {
            lock.check(fence.peek()).map_err(|why| SnapshotError::Corrupt { name: name.to_string(), why })?;
        }
        for (name, key) in values.entries() {
            if !locks.get(name).is_some_and(|lock| lock.holders().contains_key(key)) {
                let why = format!("a value of key {key}, which holds nothing");
                return Err(SnapshotError::Corrupt { name: name.to_string(), why });
            }
        }
        Ok(Self { limits, fence, locks, values })
    }
}
