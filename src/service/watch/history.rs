//! The recent events of each group, kept for watchers to read and resume
//! from.
//!
//! Invariants, per group:
//! - `entries` holds, in log order, every event of every entry applied at
//!   an index from `complete_from` to `applied` (entries without events
//!   hold none and are not kept);
//! - at most `capacity` events are kept (and always the newest entry's):
//!   dropping the oldest entry moves `complete_from` past it;
//! - an installed snapshot replaces what came before: `complete_from`
//!   moves past the snapshot's index;
//! - a closed history (a relay's copy whose source is lost, or the node's
//!   own when its replica of the group was removed) reads as `Closed`; one
//!   that records again (the node holds a replica again) reopens;
//! - recording never blocks on a watcher: it appends under a short mutex
//!   and bumps the group's applied index, which wakes the watchers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::Event;
use crate::routing::GroupId;

/// The events of one applied entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub index: u64,
    pub events: Arc<[Event]>,
    /// When this node applied it.
    pub applied_at: Instant,
}

/// What a watcher reads from a group's history.
#[derive(Debug)]
pub enum Read {
    /// The entries from the index asked for up to `applied`, the index the
    /// group has reached.
    Entries { entries: Vec<Entry>, applied: u64 },
    /// The index asked for is older than the oldest kept.
    Compacted { oldest: u64, applied: u64 },
    /// The history will grow no more (a relay lost the group's nodes).
    Closed,
}

struct Log {
    entries: VecDeque<Entry>,
    events: usize,
    complete_from: u64,
    applied: u64,
    closed: bool,
}

struct GroupLog {
    log: Mutex<Log>,
    applied: watch::Sender<u64>,
}

pub struct History {
    groups: Vec<GroupLog>,
    capacity: usize,
}

impl History {
    /// Histories of groups `0..groups`, each keeping up to `capacity` events.
    pub fn new(groups: u32, capacity: usize) -> Self {
        let group = || GroupLog {
            log: Mutex::new(Log { entries: VecDeque::new(), events: 0, complete_from: 0, applied: 0, closed: false }),
            applied: watch::channel(0).0,
        };
        Self { groups: (0..groups).map(|_| group()).collect(), capacity: capacity.max(1) }
    }

    fn log(&self, group: GroupId) -> Option<MutexGuard<'_, Log>> {
        let g = self.groups.get(group as usize)?;
        Some(g.log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records the entry applied at `index` and its events (maybe none).
    pub fn record(&self, group: GroupId, index: u64, events: Vec<Event>) {
        let Some(mut log) = self.log(group) else { return };
        if index <= log.applied {
            return; // Applied once already (a replay before a snapshot reset).
        }
        log.applied = index;
        log.closed = false;
        if !events.is_empty() {
            log.events += events.len();
            log.entries.push_back(Entry { index, events: events.into(), applied_at: Instant::now() });
            while log.events > self.capacity && log.entries.len() > 1 {
                let Some(old) = log.entries.pop_front() else { break };
                log.events -= old.events.len();
                log.complete_from = old.index + 1;
            }
        }
        drop(log);
        self.groups[group as usize].applied.send_replace(index);
    }

    /// A snapshot up to `index` replaced the group's state: what came before
    /// is gone.
    pub fn reset(&self, group: GroupId, index: u64) {
        let Some(mut log) = self.log(group) else { return };
        log.entries.clear();
        log.events = 0;
        log.complete_from = index + 1;
        log.applied = log.applied.max(index);
        let applied = log.applied;
        drop(log);
        self.groups[group as usize].applied.send_replace(applied);
    }

    /// Ends `group`'s history: its readers are told `Closed`.
    pub fn close(&self, group: GroupId) {
        let Some(mut log) = self.log(group) else { return };
        log.closed = true;
        let applied = log.applied;
        drop(log);
        self.groups[group as usize].applied.send_replace(applied);
    }

    /// The entries of `group` from index `from` on.
    pub fn read(&self, group: GroupId, from: u64) -> Read {
        let Some(log) = self.log(group) else {
            return Read::Compacted { oldest: 0, applied: 0 };
        };
        if log.closed {
            return Read::Closed;
        }
        if from < log.complete_from {
            return Read::Compacted { oldest: log.complete_from, applied: log.applied };
        }
        let start = log.entries.partition_point(|e| e.index < from);
        Read::Entries { entries: log.entries.range(start..).cloned().collect(), applied: log.applied }
    }

    /// The index `group` has applied, as recorded here.
    pub fn applied(&self, group: GroupId) -> u64 {
        self.log(group).map_or(0, |log| log.applied)
    }

    /// Wakes when `group` applies another entry.
    pub fn subscribe(&self, group: GroupId) -> Option<watch::Receiver<u64>> {
        Some(self.groups.get(group as usize)?.applied.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::watch::event::sample;

    fn event(index: u64) -> Event {
        sample("a", index)
    }

    fn indexes(read: Read) -> Vec<u64> {
        match read {
            Read::Entries { entries, .. } => entries.iter().map(|e| e.index).collect(),
            Read::Compacted { oldest, .. } => vec![u64::MAX, oldest],
            Read::Closed => vec![u64::MAX],
        }
    }

    #[test]
    fn keeps_a_gap_free_bounded_run_and_says_when_it_is_gone() {
        let history = History::new(1, 3);
        history.record(0, 1, vec![event(1)]);
        history.record(0, 2, vec![]);
        history.record(0, 3, vec![event(3), event(3)]);
        assert_eq!(indexes(history.read(0, 0)), [1, 3]);
        assert_eq!(indexes(history.read(0, 2)), [3]);
        history.record(0, 4, vec![event(4)]);
        // Four events kept of three allowed: entry 1 goes, and with it index 1.
        assert_eq!(indexes(history.read(0, 1)), [u64::MAX, 2]);
        assert_eq!(indexes(history.read(0, 2)), [3, 4]);
        history.record(0, 4, vec![event(4)]);
        assert_eq!(indexes(history.read(0, 5)), Vec::<u64>::new(), "a replayed index is not recorded twice");
        history.reset(0, 10);
        assert_eq!(indexes(history.read(0, 4)), [u64::MAX, 11]);
        assert_eq!(history.applied(0), 10);
        assert!(matches!(history.read(3, 0), Read::Compacted { .. }), "an unknown group");
    }

    #[test]
    fn a_closed_history_reads_closed_until_it_records_again() {
        let history = History::new(1, 8);
        history.record(0, 1, vec![event(1)]);
        history.close(0);
        assert!(matches!(history.read(0, 1), Read::Closed), "the replica left: readers resume elsewhere");
        history.record(0, 1, vec![event(1)]);
        assert!(matches!(history.read(0, 1), Read::Closed), "a replay does not reopen it");
        history.record(0, 5, vec![event(5)]);
        assert_eq!(indexes(history.read(0, 1)), [1, 5], "a replica again: it reopens");
    }
}
