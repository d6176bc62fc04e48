//! The waiter queue of one lock.
//!
//! Invariants: FIFO by enqueue index (pushes carry increasing log indexes);
//! a key appears at most once; the lock, not the queue, ensures a key is
//! never both holder and waiter. The queue is bounded by
//! `Limits::max_waiters_per_lock`, so linear scans stay cheap.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{LockKey, Mode, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    pub key: LockKey,
    pub permits: u32,
    pub mode: Mode,
    /// Lease TTL of the grant this waiter will receive.
    pub ttl_ms: u64,
    /// How long it may wait, counted by the leader from `enqueue_index`.
    pub wait_ms: u64,
    /// Log index of the acquire that queued it: names this wait exactly.
    pub enqueue_index: u64,
    /// The value its grant will carry.
    pub value: Option<Value>,
}

/// The queue lives in a box made on the first push and dropped when it
/// empties: most locks never queue anyone, and an empty queue then costs
/// one pointer. It serialises as it always has (`{"queue": [...]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Wire", into = "Wire")]
pub struct WaitQueue {
    queue: Option<Box<VecDeque<Waiter>>>,
}

/// The serialised form of a queue.
#[derive(Clone, Serialize, Deserialize)]
struct Wire {
    queue: VecDeque<Waiter>,
}

impl From<Wire> for WaitQueue {
    fn from(w: Wire) -> Self {
        Self { queue: (!w.queue.is_empty()).then(|| Box::new(w.queue)) }
    }
}

impl From<WaitQueue> for Wire {
    fn from(q: WaitQueue) -> Self {
        Wire { queue: q.queue.map(|b| *b).unwrap_or_default() }
    }
}

impl WaitQueue {
    pub fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, waiter: Waiter) {
        self.queue.get_or_insert_with(Box::default).push_back(waiter);
    }

    pub fn front(&self) -> Option<&Waiter> {
        self.queue.as_ref()?.front()
    }

    pub fn pop_front(&mut self) -> Option<Waiter> {
        let waiter = self.queue.as_mut()?.pop_front();
        self.drop_if_empty();
        waiter
    }

    /// Position of `key` in the queue, 0 being the head.
    pub fn position(&self, key: &LockKey) -> Option<usize> {
        self.iter().position(|w| &w.key == key)
    }

    pub fn get(&self, key: &LockKey) -> Option<&Waiter> {
        self.iter().find(|w| &w.key == key)
    }

    pub fn remove(&mut self, key: &LockKey) -> Option<Waiter> {
        let at = self.position(key)?;
        let waiter = self.queue.as_mut()?.remove(at);
        self.drop_if_empty();
        waiter
    }

    pub fn iter(&self) -> impl Iterator<Item = &Waiter> {
        self.queue.iter().flat_map(|q| q.iter())
    }

    fn drop_if_empty(&mut self) {
        if self.queue.as_ref().is_some_and(|q| q.is_empty()) {
            self.queue = None;
        }
    }
}
