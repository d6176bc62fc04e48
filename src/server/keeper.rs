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
//! `REPROPOSE_AFTER`; a follower proposes nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock::{Command, Effect, LockKey, LockTable};
use crate::routing::GroupId;

/// A due command not yet applied is proposed again after this long.
const REPROPOSE_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
struct Deadline {
    applied_at: Instant,
    after: Duration,
    /// The log index that names what this deadline ends.
    tag: u64,
    proposed_at: Option<Instant>,
}

impl Deadline {
    fn new(applied_at: Instant, after_ms: u64, tag: u64) -> Self {
        Self { applied_at, after: Duration::from_millis(after_ms), tag, proposed_at: None }
    }

    /// When it falls due, counted from the later of apply and election.
    fn at(&self, leader_since: Instant) -> Option<Instant> {
        self.applied_at.max(leader_since).checked_add(self.after)
    }

    /// True when due and not proposed recently; marks it proposed.
    fn take_due(&mut self, now: Instant, leader_since: Instant) -> bool {
        let due = self.at(leader_since).is_some_and(|at| at <= now);
        let recent = self.proposed_at.is_some_and(|p| now.duration_since(p) < REPROPOSE_AFTER);
        if due && !recent {
            self.proposed_at = Some(now);
        }
        due && !recent
    }
}

type HoldId = (String, LockKey);

#[derive(Default)]
struct GroupDeadlines {
    leader_since: Option<Instant>,
    /// When each current hold was granted (refreshes do not move it).
    granted_at: HashMap<HoldId, Instant>,
    leases: HashMap<HoldId, Deadline>,
    waits: HashMap<HoldId, Deadline>,
    idle: HashMap<String, Deadline>,
}

pub struct Keeper {
    groups: Vec<Mutex<GroupDeadlines>>,
    idle_grace_ms: u64,
}

impl Keeper {
    pub fn new(groups: u32, idle_grace_ms: u64) -> Self {
        Self { groups: (0..groups).map(|_| Mutex::default()).collect(), idle_grace_ms }
    }

    fn group(&self, group: GroupId) -> std::sync::MutexGuard<'_, GroupDeadlines> {
        self.groups[group as usize].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the deadlines that the effects of one applied entry start or
    /// end; returns how long each hold that ended was held.
    pub fn on_effects(&self, group: GroupId, effects: &[Effect], now: Instant) -> Vec<Duration> {
        let mut held = Vec::new();
        let mut g = self.group(group);
        for effect in effects {
            match effect {
                Effect::Granted { name, grant, .. } => {
                    let id = (name.clone(), grant.key.clone());
                    g.waits.remove(&id);
                    g.idle.remove(name);
                    g.granted_at.entry(id.clone()).or_insert(now);
                    g.leases.insert(id, Deadline::new(now, grant.ttl_ms, grant.lease_index));
                }
                Effect::Refreshed { name, key, ttl_ms, lease_index } => {
                    g.leases.insert((name.clone(), key.clone()), Deadline::new(now, *ttl_ms, *lease_index));
                }
                Effect::HoldEnded { name, key, .. } => {
                    let id = (name.clone(), key.clone());
                    g.leases.remove(&id);
                    if let Some(at) = g.granted_at.remove(&id) {
                        held.push(now.saturating_duration_since(at));
                    }
                }
                Effect::Queued { name, key, wait_ms, enqueue_index, .. } => {
                    g.idle.remove(name);
                    g.waits.insert((name.clone(), key.clone()), Deadline::new(now, *wait_ms, *enqueue_index));
                }
                Effect::WaitEnded { name, key, .. } => {
                    g.waits.remove(&(name.clone(), key.clone()));
                }
                Effect::Idle { name, since } => {
                    g.idle.insert(name.clone(), Deadline::new(now, self.idle_grace_ms, *since));
                }
                Effect::Removed { name } => {
                    g.idle.remove(name);
                }
            }
        }
        held
    }

    /// Whether this node led `group` at the keeper's last look.
    pub fn is_leader(&self, group: GroupId) -> bool {
        self.group(group).leader_since.is_some()
    }

    /// Rebuilds a group's deadlines from a table installed from a snapshot;
    /// every deadline restarts now (late, never early).
    pub fn restore(&self, group: GroupId, table: &LockTable, now: Instant) {
        let mut g = self.group(group);
        let leader_since = g.leader_since;
        *g = GroupDeadlines { leader_since, ..Default::default() };
        for (name, lock) in table.iter() {
            for (key, h) in lock.holders() {
                g.leases.insert((name.clone(), key.clone()), Deadline::new(now, h.ttl_ms, h.lease_index));
                g.granted_at.insert((name.clone(), key.clone()), now);
            }
            for w in lock.waiters().iter() {
                g.waits.insert((name.clone(), w.key.clone()), Deadline::new(now, w.wait_ms, w.enqueue_index));
            }
            if let Some(since) = lock.idle_since() {
                g.idle.insert(name.clone(), Deadline::new(now, self.idle_grace_ms, since));
            }
        }
    }

    /// Tells the keeper whether this node leads `group` now.
    pub fn set_leader(&self, group: GroupId, is_leader: bool, now: Instant) {
        let mut g = self.group(group);
        match (is_leader, g.leader_since) {
            (true, None) => g.leader_since = Some(now),
            (false, Some(_)) => g.leader_since = None,
            _ => {}
        }
    }

    /// The commands that are due in `group`, if this node leads it.
    pub fn due(&self, group: GroupId, now: Instant) -> Vec<Command> {
        let mut g = self.group(group);
        let Some(since) = g.leader_since else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((name, key), d) in g.leases.iter_mut() {
            if d.take_due(now, since) {
                out.push(Command::Expire { name: name.clone(), key: key.clone(), lease_index: d.tag });
            }
        }
        for ((name, key), d) in g.waits.iter_mut() {
            if d.take_due(now, since) {
                out.push(Command::WaitTimeout { name: name.clone(), key: key.clone(), enqueue_index: d.tag });
            }
        }
        for (name, d) in g.idle.iter_mut() {
            if d.take_due(now, since) {
                out.push(Command::GcIdle { name: name.clone(), idle_since: d.tag });
            }
        }
        out
    }

    /// Time left on a lease, as this node would count it if it led.
    pub fn remaining(&self, group: GroupId, name: &str, key: &LockKey, now: Instant) -> Option<Duration> {
        let g = self.group(group);
        let d = g.leases.get(&(name.to_owned(), key.clone()))?;
        let at = d.at(g.leader_since.unwrap_or(d.applied_at))?;
        Some(at.saturating_duration_since(now))
    }

    /// Number of leases tracked in `group`.
    pub fn leases(&self, group: GroupId) -> usize {
        self.group(group).leases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Grant;

    fn granted(name: &str, key: &str, ttl_ms: u64, lease_index: u64) -> Effect {
        let grant = Grant { key: LockKey::new(key).unwrap(), token: 1, permits: 1, ttl_ms, lease_index };
        Effect::Granted { name: name.into(), grant, handoff: false }
    }

    #[test]
    fn only_a_leader_expires_and_counts_from_its_election() {
        let keeper = Keeper::new(1, 60_000);
        let t0 = Instant::now();
        keeper.on_effects(0, &[granted("a", "k", 1000, 5)], t0);
        assert!(keeper.due(0, t0 + Duration::from_secs(5)).is_empty(), "a follower proposes nothing");
        // Elected 800 ms after the grant: the lease now ends at 1800 ms, not 1000 ms.
        keeper.set_leader(0, true, t0 + Duration::from_millis(800));
        assert!(keeper.due(0, t0 + Duration::from_millis(1500)).is_empty());
        let due = keeper.due(0, t0 + Duration::from_millis(1800));
        let expected = Command::Expire { name: "a".into(), key: LockKey::new("k").unwrap(), lease_index: 5 };
        assert_eq!(due, vec![expected]);
        assert!(keeper.due(0, t0 + Duration::from_millis(1900)).is_empty(), "not proposed twice at once");
        assert_eq!(keeper.due(0, t0 + Duration::from_millis(4000)).len(), 1, "proposed again if still there");
    }

    #[test]
    fn refresh_moves_the_deadline_and_release_clears_it() {
        let keeper = Keeper::new(1, 60_000);
        let t0 = Instant::now();
        keeper.set_leader(0, true, t0);
        keeper.on_effects(0, &[granted("a", "k", 1000, 5)], t0);
        let key = LockKey::new("k").unwrap();
        let refreshed = Effect::Refreshed { name: "a".into(), key: key.clone(), ttl_ms: 1000, lease_index: 9 };
        keeper.on_effects(0, &[refreshed], t0 + Duration::from_millis(900));
        assert!(keeper.due(0, t0 + Duration::from_millis(1500)).is_empty());
        let due = keeper.due(0, t0 + Duration::from_millis(1900));
        assert_eq!(due, vec![Command::Expire { name: "a".into(), key: key.clone(), lease_index: 9 }]);
        let ended = Effect::HoldEnded { name: "a".into(), key, permits: 1, reason: crate::lock::EndReason::Released };
        keeper.on_effects(0, &[ended], t0 + Duration::from_millis(2000));
        assert_eq!(keeper.leases(0), 0);
    }

    #[test]
    fn waits_and_idle_locks_fall_due() {
        let keeper = Keeper::new(1, 500);
        let t0 = Instant::now();
        keeper.set_leader(0, true, t0);
        let key = LockKey::new("w").unwrap();
        let queued = Effect::Queued { name: "a".into(), key: key.clone(), permits: 1, wait_ms: 300, enqueue_index: 7 };
        keeper.on_effects(0, &[queued, Effect::Idle { name: "b".into(), since: 3 }], t0);
        let mut due = keeper.due(0, t0 + Duration::from_millis(600));
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
