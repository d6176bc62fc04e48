//! The lease keeper's record of one group's held leases, kept compact.
//!
//! A node holds a record per held lease, so this is the keeper's share of
//! memory per held lock. A hash map of full records cost 180–290 bytes per
//! lease (64-byte entries at hashbrown's load factor, which halves at each
//! doubling); here the records are ~56 bytes in a vector sorted by first
//! fencing token, plus a 16-byte key in the deadline index. Fencing tokens
//! come from a counter that only grows, so a new grant is an append and a
//! lookup a binary search. An ended lease leaves a tombstone that a
//! compaction sweeps once tombstones outnumber live records (amortised
//! O(1) per removal). The vector grows by a quarter, not by doubling.
//!
//! Invariants: live records are unique by token and sorted by it; every
//! live record has exactly one `(base deadline, token)` entry in `due`; a
//! tombstone has none; `proposed` holds only tokens of live records.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A tag no log index takes: marks a tombstone.
const DEAD: u64 = u64::MAX;
/// Tombstones are swept once there are more of them than this and than
/// live records.
const SWEEP_AFTER: usize = 1024;

/// When something the keeper tracks falls due, as this node counts it
/// (milliseconds since the keeper's epoch): a lease here, a wait or an idle
/// lock in the keeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// When this node applied what starts the deadline.
    pub applied_ms: u64,
    pub after_ms: u64,
    /// The log index that names what this deadline ends.
    pub tag: u64,
}

impl Deadline {
    pub fn new(applied_ms: u64, after_ms: u64, tag: u64) -> Self {
        Self { applied_ms, after_ms, tag }
    }

    /// The deadline as if this node had always led: the index order.
    pub fn base(&self) -> u64 {
        self.applied_ms.saturating_add(self.after_ms)
    }

    /// When it falls due, counted from the later of apply and election.
    pub fn at(&self, leader_since_ms: u64) -> u64 {
        self.applied_ms.max(leader_since_ms).saturating_add(self.after_ms)
    }

    /// True when due at `now_ms` and not proposed (`proposed_ms`, 0 for
    /// never) within `again_after`; then marks it proposed now.
    pub fn take_due(&self, proposed_ms: &mut u64, now_ms: u64, leader_since_ms: u64, again_after: Duration) -> bool {
        let due = self.at(leader_since_ms) <= now_ms;
        let recent = *proposed_ms != 0 && now_ms.saturating_sub(*proposed_ms) < again_after.as_millis() as u64;
        if due && !recent {
            *proposed_ms = now_ms.max(1);
        }
        due && !recent
    }
}

struct Record {
    token: u64,
    name: Arc<str>,
    timing: Deadline,
    /// How long before `timing.applied_ms` the hold was granted (refreshes
    /// move `applied_ms`, not the grant), saturating, for the hold metric.
    held_before_ms: u32,
}

impl Record {
    fn is_live(&self) -> bool {
        self.timing.tag != DEAD
    }
}

#[derive(Default)]
pub struct Leases {
    records: Vec<Record>,
    dead: usize,
    /// (base deadline, token) of every live record.
    due: BTreeSet<(u64, u64)>,
    /// When an expiry of a lease was last proposed, by token.
    proposed: HashMap<u64, u64>,
    /// The name a tombstone keeps (shared: it frees the lock's name).
    vacant: Arc<str>,
}

impl Leases {
    /// Live records.
    pub fn len(&self) -> usize {
        self.records.len() - self.dead
    }

    fn find(&self, token: u64) -> Option<usize> {
        let i = self.records.binary_search_by_key(&token, |r| r.token).ok()?;
        self.records[i].is_live().then_some(i)
    }

    /// The timing of the lease with first token `token`, if held.
    pub fn timing(&self, token: u64) -> Option<Deadline> {
        self.find(token).map(|i| self.records[i].timing)
    }

    /// The lock and the deadline of the lease with first token `token`.
    pub fn get(&self, token: u64) -> Option<(&Arc<str>, Deadline)> {
        self.find(token).map(|i| (&self.records[i].name, self.records[i].timing))
    }

    /// Records a grant applied at `now_ms`. A grant of a token already held
    /// (a retried acquire) restarts its deadline and keeps its grant time.
    pub fn grant(&mut self, token: u64, name: Arc<str>, now_ms: u64, timing: Deadline) {
        if let Some(i) = self.find(token) {
            self.move_deadline(i, now_ms, timing);
            return;
        }
        let record = Record { token, name, timing, held_before_ms: 0 };
        match self.records.binary_search_by_key(&token, |r| r.token) {
            // A tombstone of the same token: take its place.
            Ok(i) => {
                self.records[i] = record;
                self.dead -= 1;
            }
            Err(i) => {
                if self.records.len() == self.records.capacity() {
                    self.records.reserve_exact(self.records.len() / 4 + 16);
                }
                self.records.insert(i, record);
            }
        }
        self.due.insert((timing.base(), token));
    }

    /// Moves the deadline of a refreshed lease; `false` if it is not held.
    pub fn refresh(&mut self, token: u64, now_ms: u64, timing: Deadline) -> bool {
        let Some(i) = self.find(token) else { return false };
        self.move_deadline(i, now_ms, timing);
        true
    }

    fn move_deadline(&mut self, i: usize, now_ms: u64, timing: Deadline) {
        let record = &mut self.records[i];
        let granted_ms = record.timing.applied_ms.saturating_sub(u64::from(record.held_before_ms));
        self.due.remove(&(record.timing.base(), record.token));
        record.held_before_ms = now_ms.saturating_sub(granted_ms).min(u64::from(u32::MAX)) as u32;
        record.timing = timing;
        self.due.insert((timing.base(), record.token));
        self.proposed.remove(&record.token);
    }

    /// Forgets an ended lease; returns how long it was held.
    pub fn end(&mut self, token: u64, now_ms: u64) -> Option<Duration> {
        let i = self.find(token)?;
        let record = &mut self.records[i];
        self.due.remove(&(record.timing.base(), token));
        self.proposed.remove(&token);
        let granted_ms = record.timing.applied_ms.saturating_sub(u64::from(record.held_before_ms));
        record.timing.tag = DEAD;
        record.name = self.vacant.clone();
        self.dead += 1;
        if self.dead > SWEEP_AFTER && self.dead > self.len() {
            self.records.retain(Record::is_live);
            self.records.shrink_to(self.records.len() + self.records.len() / 4);
            self.dead = 0;
        }
        Some(Duration::from_millis(now_ms.saturating_sub(granted_ms)))
    }

    /// Tokens whose base deadline is at or before `now_ms`, earliest first
    /// (a lease is due at `at(leader_since)`, never before its base).
    pub fn past_base(&self, now_ms: u64) -> Vec<u64> {
        self.due.iter().take_while(|(base, _)| *base <= now_ms).map(|(_, token)| *token).collect()
    }

    /// True when the lease is due at `now_ms` and its expiry was not
    /// proposed within `again_after`; marks it proposed.
    pub fn take_due(&mut self, token: u64, now_ms: u64, leader_since_ms: u64, again_after: Duration) -> bool {
        let Some(timing) = self.timing(token) else { return false };
        let mut proposed_ms = self.proposed.get(&token).copied().unwrap_or(0);
        let due = timing.take_due(&mut proposed_ms, now_ms, leader_since_ms, again_after);
        if due {
            self.proposed.insert(token, proposed_ms);
        }
        due
    }

    /// Rebuilds from `(token, name, timing)` of every held lease.
    pub fn rebuild(held: impl Iterator<Item = (u64, Arc<str>, Deadline)>) -> Self {
        let mut records: Vec<Record> =
            held.map(|(token, name, timing)| Record { token, name, timing, held_before_ms: 0 }).collect();
        records.sort_by_key(|r| r.token);
        records.dedup_by_key(|r| r.token);
        records.shrink_to_fit();
        let due = records.iter().map(|r| (r.timing.base(), r.token)).collect();
        Self { records, dead: 0, due, proposed: HashMap::new(), vacant: Arc::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(applied_ms: u64, after_ms: u64, tag: u64) -> Deadline {
        Deadline::new(applied_ms, after_ms, tag)
    }

    #[test]
    fn grants_refreshes_and_ends_keep_one_deadline_each() {
        let mut l = Leases::default();
        l.grant(10, "a".into(), 0, t(0, 1000, 1));
        l.grant(12, "b".into(), 5, t(5, 100, 2));
        assert_eq!(l.past_base(200), vec![12]);
        assert!(l.refresh(12, 150, t(150, 1000, 3)));
        assert_eq!(l.past_base(1000), vec![10], "the refreshed deadline moved");
        assert_eq!(l.end(12, 400), Some(Duration::from_millis(395)), "held since its grant, not its refresh");
        assert_eq!(l.end(12, 400), None, "ended once");
        assert!(!l.refresh(12, 500, t(500, 10, 4)));
        assert_eq!((l.len(), l.past_base(u64::MAX)), (1, vec![10]));
        assert_eq!(l.get(10).map(|(n, _)| &**n), Some("a"));
    }

    #[test]
    fn a_retried_grant_keeps_its_grant_time() {
        let mut l = Leases::default();
        l.grant(7, "a".into(), 100, t(100, 1000, 1));
        l.grant(7, "a".into(), 300, t(300, 1000, 1));
        assert_eq!(l.len(), 1);
        assert_eq!(l.past_base(1299), Vec::<u64>::new());
        assert_eq!(l.end(7, 400), Some(Duration::from_millis(300)));
    }

    #[test]
    fn due_counts_from_the_election_and_is_not_proposed_twice_at_once() {
        let mut l = Leases::default();
        let again = Duration::from_secs(2);
        l.grant(1, "a".into(), 0, t(0, 1000, 5));
        assert!(!l.take_due(1, 1500, 800, again), "elected at 800: due at 1800");
        assert!(l.take_due(1, 1800, 800, again));
        assert!(!l.take_due(1, 1900, 800, again), "proposed 100 ms ago");
        assert!(l.take_due(1, 4000, 800, again), "proposed again if still held");
        l.refresh(1, 4000, t(4000, 1000, 9));
        assert!(l.take_due(1, 5000, 800, again), "a refresh forgets the proposal");
    }

    #[test]
    fn tombstones_are_swept_and_lookups_stay_right() {
        let mut l = Leases::default();
        for token in 0..5000u64 {
            l.grant(token * 2, format!("n{token}").into(), token, t(token, 10_000, token + 1));
        }
        for token in 0..4000u64 {
            assert!(l.end(token * 2, 20_000).is_some());
        }
        assert!(l.records.len() < 5000, "swept: {} records", l.records.len());
        assert_eq!(l.len(), 1000);
        for token in 4000..5000u64 {
            assert_eq!(l.get(token * 2).map(|(n, _)| n.to_string()), Some(format!("n{token}")));
        }
        assert_eq!(l.due.len(), 1000);
        l.grant(3, "late".into(), 1, t(1, 1, 1));
        assert_eq!(l.past_base(2), vec![3], "an out-of-order token still lands in order");
    }

    #[test]
    fn rebuild_sorts_and_indexes() {
        let held = [(9u64, "b", 20u64), (3, "a", 10)].map(|(tok, n, after)| (tok, Arc::from(n), t(0, after, 1)));
        let l = Leases::rebuild(held.into_iter());
        assert_eq!(l.past_base(15), vec![3]);
        assert_eq!(l.timing(9), Some(t(0, 20, 1)));
    }
}
