//! The tick switches of a node's Raft groups, and their activity.
//!
//! The policy of when a group's timers run lives in `quiesce`; this is the
//! mechanism it and the write path share: the write path marks a group
//! active (`touch`, which wakes a quiet leader), a leadership transfer keeps
//! a follower awake (`wake_follower`), and the quiescer loop switches timers.
//!
//! Invariant: a group's tick switch and its `ticking` flag change together,
//! under one lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::state_machine::Raft;
use crate::routing::GroupId;

/// Per-group activity and tick switches of one node.
pub struct Quiescer {
    rafts: Arc<Vec<Raft>>,
    epoch: Instant,
    last_active_ms: Vec<AtomicU64>,
    awake_until_ms: Vec<AtomicU64>,
    /// Mirrors `switches` for a lock-free check on the hot path.
    ticking: Vec<AtomicBool>,
    switches: Mutex<()>,
}

impl Quiescer {
    pub fn new(rafts: Arc<Vec<Raft>>) -> Self {
        let zeros = || rafts.iter().map(|_| AtomicU64::new(0)).collect();
        let (last_active_ms, awake_until_ms) = (zeros(), zeros());
        let ticking = rafts.iter().map(|_| AtomicBool::new(true)).collect();
        Self { rafts, epoch: Instant::now(), last_active_ms, awake_until_ms, ticking, switches: Mutex::new(()) }
    }

    pub fn rafts(&self) -> &Arc<Vec<Raft>> {
        &self.rafts
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Marks `group` active now and, when this node leads it, wakes its
    /// timers if they were off; true when it woke them. A woken leader's
    /// lease has lapsed (openraft refuses writes until a quorum acknowledges
    /// it again): run a ReadIndex round before writing.
    pub fn touch(&self, group: GroupId) -> bool {
        let Some(last) = self.last_active_ms.get(group as usize) else { return false };
        last.store(self.now_ms(), Ordering::Relaxed);
        if !self.ticking[group as usize].load(Ordering::Acquire) && self.leads(group) {
            self.set_ticking(group, true);
            return true;
        }
        false
    }

    /// Keeps `group`'s timers on for `period`, whatever its role.
    pub fn wake_follower(&self, group: GroupId, period: Duration) {
        let Some(until) = self.awake_until_ms.get(group as usize) else { return };
        until.fetch_max(self.now_ms() + period.as_millis() as u64, Ordering::Relaxed);
        self.set_ticking(group, true);
    }

    /// Ends a `wake_follower` period: the group has a new leader or term.
    pub(super) fn settle(&self, group: GroupId) {
        self.awake_until_ms[group as usize].store(0, Ordering::Relaxed);
    }

    pub(super) fn awake(&self, group: GroupId) -> bool {
        self.awake_until_ms[group as usize].load(Ordering::Relaxed) > self.now_ms()
    }

    pub fn leads(&self, group: GroupId) -> bool {
        use openraft::async_runtime::WatchReceiver;
        self.rafts[group as usize].metrics().borrow_watched().state == openraft::ServerState::Leader
    }

    /// How long `group` has been idle on this node.
    pub fn idle(&self, group: GroupId) -> Duration {
        let last = self.last_active_ms[group as usize].load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Switches `group`'s timers; a no-op when already so.
    pub fn set_ticking(&self, group: GroupId, on: bool) {
        let _switching = self.switches.lock().unwrap_or_else(|e| e.into_inner());
        if self.ticking[group as usize].load(Ordering::Acquire) != on {
            self.rafts[group as usize].runtime_config().tick(on);
            self.ticking[group as usize].store(on, Ordering::Release);
        }
    }

    /// How many of the first `groups` groups (the lock groups) have their
    /// timers off.
    pub fn quiesced(&self, groups: u32) -> usize {
        self.ticking.iter().take(groups as usize).filter(|t| !t.load(Ordering::Relaxed)).count()
    }
}
