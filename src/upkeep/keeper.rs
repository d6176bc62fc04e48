//! The lease keeper: deadlines of leases, waits and idle locks.
//!
//! This is the one place that turns time into commands (etcd's lessor rule).
//! Every replica records, on its own monotonic clock, when it applied each
//! grant, refresh, enqueue and idleness; only the group leader acts on them.
//! A deadline runs from the later of (the moment this node applied it, the
//! moment this node became leader), so a lease never expires early across a
//! leader change and may expire late by up to an election timeout.
//!
//! Invariants: commands name the exact lease, wait or idle period they end
//! (`lease_index`, `enqueue_index`, `idle_since`), so a stale one does
//! nothing when applied; a due command is proposed at most once per
//! `REPROPOSE_AFTER`; a follower proposes nothing. Leases are named by their
//! first fencing token (unique in a group) and, like waits, indexed by
//! deadline, so a tick costs what is due, not what is held.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::leases::{Deadline, Leases};
use super::Propose;
use crate::lock::{Command, Effect, LockKey, LockTable};
use crate::raft::Groups;
use crate::routing::GroupId;

/// A due command not yet applied is proposed again after this long.
const REPROPOSE_AFTER: Duration = Duration::from_secs(2);
/// How often the keeper looks for due deadlines.
const EVERY: Duration = Duration::from_millis(50);

/// A wait's or an idle lock's deadline, and when it was last proposed (0:
/// never).
#[derive(Clone, Copy, Debug)]
struct Timing {
    deadline: Deadline,
    proposed_ms: u64,
}

impl Timing {
    fn new(applied_ms: u64, after_ms: u64, tag: u64) -> Self {
        Self { deadline: Deadline::new(applied_ms, after_ms, tag), proposed_ms: 0 }
    }

    fn base(&self) -> u64 {
        self.deadline.base()
    }

    /// True when due and not proposed recently; marks it proposed.
    fn take_due(&mut self, now_ms: u64, leader_since_ms: u64) -> bool {
        self.deadline.take_due(&mut self.proposed_ms, now_ms, leader_since_ms, REPROPOSE_AFTER)
    }
}

type WaitId = (Arc<str>, LockKey);

/// One group's deadlines, each kind indexed by when it falls due so that a
/// tick looks only at what is due, not at every lease.
#[derive(Default)]
struct GroupDeadlines {
    leader_since_ms: Option<u64>,
    leases: Leases,
    waits: HashMap<WaitId, Timing>,
    wait_due: BTreeSet<(u64, WaitId)>,
    /// Idle locks of the V1 era (collected by `GcIdle`): few, scanned.
    idle: HashMap<Arc<str>, Timing>,
}

impl GroupDeadlines {
    fn add_wait(&mut self, id: WaitId, timing: Timing) {
        self.wait_due.insert((timing.base(), id.clone()));
        if let Some(old) = self.waits.insert(id.clone(), timing) {
            self.wait_due.remove(&(old.base(), id));
        }
    }

    fn remove_wait(&mut self, id: &WaitId) {
        if let Some(old) = self.waits.remove(id) {
            self.wait_due.remove(&(old.base(), id.clone()));
        }
    }

    /// Expiries of the leases due at `now_ms` (leader since `since`); the
    /// key of each is the one `table` lists for its token.
    fn due_leases(&mut self, now_ms: u64, since: u64, table: &LockTable, out: &mut Vec<Command>) {
        for token in self.leases.past_base(now_ms) {
            let Some((name, timing)) = self.leases.get(token).map(|(name, timing)| (name.clone(), timing)) else {
                continue;
            };
            let holder = table.get(&name).and_then(|l| l.holders().iter().find(|(_, h)| h.token == token));
            let Some((key, _)) = holder else { continue };
            if self.leases.take_due(token, now_ms, since, REPROPOSE_AFTER) {
                out.push(Command::Expire { name: name.to_string(), key: key.clone(), lease_index: timing.tag });
            }
        }
    }

    /// Timeouts of the waits due at `now_ms`.
    fn due_waits(&mut self, now_ms: u64, since: u64, out: &mut Vec<Command>) {
        let candidates: Vec<WaitId> =
            self.wait_due.iter().take_while(|(base, _)| *base <= now_ms).map(|(_, id)| id.clone()).collect();
        for id in candidates {
            let Some(timing) = self.waits.get_mut(&id) else { continue };
            if timing.take_due(now_ms, since) {
                out.push(Command::WaitTimeout {
                    name: id.0.to_string(),
                    key: id.1.clone(),
                    enqueue_index: timing.deadline.tag,
                });
            }
        }
    }
}

pub struct Keeper {
    groups: Vec<Mutex<GroupDeadlines>>,
    idle_grace_ms: u64,
    epoch: Instant,
}

impl Keeper {
    pub fn new(groups: u32, idle_grace_ms: u64) -> Self {
        let groups = (0..groups).map(|_| Mutex::default()).collect();
        Self { groups, idle_grace_ms, epoch: Instant::now() }
    }

    /// The deadlines of data group `group`; `None` for any other id: the
    /// meta group holds no locks, and its snapshots and entries reach the
    /// keeper like every group's (a node restarting after the meta group
    /// took a snapshot panicked here once).
    fn group(&self, group: GroupId) -> Option<std::sync::MutexGuard<'_, GroupDeadlines>> {
        Some(self.groups.get(group as usize)?.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Records the deadlines that the effects of one applied entry start or
    /// end; returns how long each hold that ended was held.
    pub fn on_effects(&self, group: GroupId, effects: &[Effect], now: Instant) -> Vec<Duration> {
        let now_ms = self.ms(now);
        let mut held = Vec::new();
        let Some(mut g) = self.group(group) else { return held };
        for effect in effects {
            match effect {
                Effect::Granted { name, grant, .. } => {
                    let name: Arc<str> = name.clone();
                    g.remove_wait(&(name.clone(), grant.key.clone()));
                    g.idle.remove(&name);
                    let timing = Deadline::new(now_ms, grant.ttl_ms, grant.lease_index);
                    g.leases.grant(grant.token, name, now_ms, timing);
                }
                Effect::Refreshed { token, ttl_ms, lease_index, .. } => {
                    let timing = Deadline::new(now_ms, *ttl_ms, *lease_index);
                    g.leases.refresh(*token, now_ms, timing);
                }
                Effect::HoldEnded { token, .. } => {
                    held.extend(g.leases.end(*token, now_ms));
                }
                Effect::Queued { name, key, wait_ms, enqueue_index, .. } => {
                    g.idle.remove(name);
                    g.add_wait((name.clone(), key.clone()), Timing::new(now_ms, *wait_ms, *enqueue_index));
                }
                Effect::WaitEnded { name, key, .. } => {
                    g.remove_wait(&(name.clone(), key.clone()));
                }
                Effect::Idle { name, since } => {
                    g.idle.insert(name.clone(), Timing::new(now_ms, self.idle_grace_ms, *since));
                }
                Effect::Removed { name } => {
                    g.idle.remove(name);
                }
                // A value or a mode changes no deadline.
                Effect::ValueChanged { .. } | Effect::Downgraded { .. } => {}
            }
        }
        held
    }

    /// Whether this node led `group` at the keeper's last look.
    pub fn is_leader(&self, group: GroupId) -> bool {
        self.group(group).is_some_and(|g| g.leader_since_ms.is_some())
    }

    /// Rebuilds a group's deadlines from a table installed from a snapshot;
    /// every deadline restarts now (late, never early).
    pub fn restore(&self, group: GroupId, table: &LockTable, now: Instant) {
        let now_ms = self.ms(now);
        let Some(mut g) = self.group(group) else { return };
        let leader_since_ms = g.leader_since_ms;
        let held = table.iter().flat_map(|(name, lock)| {
            lock.holders()
                .iter()
                .map(move |(_, h)| (h.token, name.clone(), Deadline::new(now_ms, h.ttl_ms, h.lease_index)))
        });
        *g = GroupDeadlines { leader_since_ms, leases: Leases::rebuild(held), ..Default::default() };
        for (name, lock) in table.iter() {
            for w in lock.waiters().iter() {
                g.add_wait((name.clone(), w.key.clone()), Timing::new(now_ms, w.wait_ms, w.enqueue_index));
            }
            if let Some(since) = lock.idle_since() {
                g.idle.insert(name.clone(), Timing::new(now_ms, self.idle_grace_ms, since));
            }
        }
    }

    /// Tells the keeper whether this node leads `group` now.
    pub fn set_leader(&self, group: GroupId, is_leader: bool, now: Instant) {
        let now_ms = self.ms(now);
        let Some(mut g) = self.group(group) else { return };
        match (is_leader, g.leader_since_ms) {
            (true, None) => g.leader_since_ms = Some(now_ms),
            (false, Some(_)) => g.leader_since_ms = None,
            _ => {}
        }
    }

    /// The commands that are due in `group`, if this node leads it; `table`
    /// is the group's table. Looks at what is due only (the indexes are
    /// ordered by deadline).
    pub fn due(&self, group: GroupId, now: Instant, table: &LockTable) -> Vec<Command> {
        let now_ms = self.ms(now);
        let Some(mut g) = self.group(group) else { return Vec::new() };
        let Some(since) = g.leader_since_ms else {
            return Vec::new();
        };
        let mut out = Vec::new();
        g.due_leases(now_ms, since, table, &mut out);
        g.due_waits(now_ms, since, &mut out);
        for (name, t) in g.idle.iter_mut() {
            if t.take_due(now_ms, since) {
                out.push(Command::GcIdle { name: name.to_string(), idle_since: t.deadline.tag });
            }
        }
        out
    }

    /// Time left on the lease of the hold with first token `token`, as this
    /// node would count it if it led.
    pub fn remaining(&self, group: GroupId, token: u64, now: Instant) -> Option<Duration> {
        let g = self.group(group)?;
        let t = g.leases.timing(token)?;
        let at = t.at(g.leader_since_ms.unwrap_or(t.applied_ms));
        Some(Duration::from_millis(at.saturating_sub(self.ms(now))))
    }

    /// Number of leases tracked in `group`.
    #[cfg(test)]
    fn leases(&self, group: GroupId) -> usize {
        self.group(group).map_or(0, |g| g.leases.len())
    }
}

/// Every `EVERY`, proposes the due expiries, wait timeouts and GC of the
/// groups this node leads, until `shutdown` turns true.
pub async fn run(
    keeper: Arc<Keeper>,
    groups: Arc<Groups>,
    propose: Arc<dyn Propose>,
    mut shutdown: watch::Receiver<bool>,
) {
    while crate::rounds::next(EVERY, &mut shutdown).await {
        let now = Instant::now();
        for group in 0..groups.count() {
            keeper.set_leader(group, groups.view(group).is_leader, now);
            for cmd in groups.state(group).read(|table| keeper.due(group, now, table)) {
                let propose = propose.clone();
                tokio::spawn(async move {
                    if let Err(err) = propose.propose_here(group, cmd.clone()).await {
                        tracing::debug!(group, %cmd, error = %err, "leader command not applied");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{AcquireCmd, Grant, Limits, Mode};

    impl Keeper {
        /// `due` against a table where "a" is held by "k" with token 1.
        fn due_in(&self, group: GroupId, now: Instant) -> Vec<Command> {
            let mut table = LockTable::new(Limits::default());
            let key = LockKey::new("k").unwrap();
            table.apply(
                1,
                &Command::Acquire(AcquireCmd {
                    name: "a".into(),
                    key,
                    size: 1,
                    permits: 1,
                    ttl_ms: 1000,
                    wait_ms: 0,
                    mode: Mode::Exclusive,
                    value: None,
                }),
            );
            self.due(group, now, &table)
        }
    }

    fn granted(name: &str, key: &str, ttl_ms: u64, lease_index: u64) -> Effect {
        let key = LockKey::new(key).unwrap();
        let (mode, value) = (Mode::Exclusive, None);
        let grant = Grant { key, token: 1, permits: 1, mode, ttl_ms, lease_index, value };
        Effect::Granted { name: name.into(), grant, handoff: false }
    }

    #[test]
    fn the_meta_group_has_no_deadlines_and_breaks_nothing() {
        let keeper = Keeper::new(2, 1000);
        let (meta, now) = (2, Instant::now());
        keeper.restore(meta, &LockTable::new(Limits::default()), now);
        assert!(keeper.on_effects(meta, &[granted("a", "k", 1000, 1)], now).is_empty());
        keeper.set_leader(meta, true, now);
        assert!(!keeper.is_leader(meta));
        assert!(keeper.due_in(meta, now + Duration::from_secs(60)).is_empty());
        assert_eq!(keeper.remaining(meta, 1, now), None);
    }

    #[test]
    fn only_a_leader_expires_and_counts_from_its_election() {
        let keeper = Keeper::new(1, 60_000);
        let t0 = Instant::now();
        keeper.on_effects(0, &[granted("a", "k", 1000, 5)], t0);
        assert!(keeper.due_in(0, t0 + Duration::from_secs(5)).is_empty(), "a follower proposes nothing");
        // Elected 800 ms after the grant: the lease now ends at 1800 ms, not 1000 ms.
        keeper.set_leader(0, true, t0 + Duration::from_millis(800));
        assert!(keeper.due_in(0, t0 + Duration::from_millis(1500)).is_empty());
        let due = keeper.due_in(0, t0 + Duration::from_millis(1800));
        let expected = Command::Expire { name: "a".into(), key: LockKey::new("k").unwrap(), lease_index: 5 };
        assert_eq!(due, vec![expected]);
        assert!(keeper.due_in(0, t0 + Duration::from_millis(1900)).is_empty(), "not proposed twice at once");
        assert_eq!(keeper.due_in(0, t0 + Duration::from_millis(4000)).len(), 1, "proposed again if still there");
    }

    #[test]
    fn refresh_moves_the_deadline_and_release_clears_it() {
        let keeper = Keeper::new(1, 60_000);
        let t0 = Instant::now();
        keeper.set_leader(0, true, t0);
        keeper.on_effects(0, &[granted("a", "k", 1000, 5)], t0);
        let key = LockKey::new("k").unwrap();
        let refreshed =
            Effect::Refreshed { name: "a".into(), key: key.clone(), token: 1, ttl_ms: 1000, lease_index: 9 };
        keeper.on_effects(0, &[refreshed], t0 + Duration::from_millis(900));
        assert!(keeper.due_in(0, t0 + Duration::from_millis(1500)).is_empty());
        let due = keeper.due_in(0, t0 + Duration::from_millis(1900));
        assert_eq!(due, vec![Command::Expire { name: "a".into(), key: key.clone(), lease_index: 9 }]);
        let reason = crate::lock::EndReason::Released;
        let (mode, value) = (Mode::Exclusive, None);
        let ended = Effect::HoldEnded { name: "a".into(), key, token: 1, permits: 1, mode, reason, value };
        keeper.on_effects(0, &[ended], t0 + Duration::from_millis(2000));
        assert_eq!(keeper.leases(0), 0);
    }

    #[test]
    fn waits_and_idle_locks_fall_due() {
        let keeper = Keeper::new(1, 500);
        let t0 = Instant::now();
        keeper.set_leader(0, true, t0);
        let key = LockKey::new("w").unwrap();
        let mode = Mode::Exclusive;
        let queued =
            Effect::Queued { name: "a".into(), key: key.clone(), permits: 1, mode, wait_ms: 300, enqueue_index: 7 };
        keeper.on_effects(0, &[queued, Effect::Idle { name: "b".into(), since: 3 }], t0);
        let mut due = keeper.due_in(0, t0 + Duration::from_millis(600));
        due.sort_by_key(|c| c.to_string());
        assert_eq!(
            due,
            vec![
                Command::GcIdle { name: "b".into(), idle_since: 3 },
                Command::WaitTimeout { name: "a".into(), key, enqueue_index: 7 },
            ]
        );
    }
}
