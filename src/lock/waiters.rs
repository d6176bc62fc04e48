//! The waiter queue of one lock.
//!
//! Invariants: FIFO by enqueue index (pushes carry increasing log indexes);
//! a key appears at most once; the lock, not the queue, ensures a key is
//! never both holder and waiter. The queue is bounded by
//! `Limits::max_waiters_per_lock`, so linear scans stay cheap.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::LockKey;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    pub key: LockKey,
    pub permits: u32,
    /// Lease TTL of the grant this waiter will receive.
    pub ttl_ms: u64,
    /// How long it may wait, counted by the leader from `enqueue_index`.
    pub wait_ms: u64,
    /// Log index of the acquire that queued it: names this wait exactly.
    pub enqueue_index: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitQueue {
    queue: VecDeque<Waiter>,
}

impl WaitQueue {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn push(&mut self, waiter: Waiter) {
        self.queue.push_back(waiter);
    }

    pub fn front(&self) -> Option<&Waiter> {
        self.queue.front()
    }

    pub fn pop_front(&mut self) -> Option<Waiter> {
        self.queue.pop_front()
    }

    /// Position of `key` in the queue, 0 being the head.
    pub fn position(&self, key: &LockKey) -> Option<usize> {
        self.queue.iter().position(|w| &w.key == key)
    }

    pub fn get(&self, key: &LockKey) -> Option<&Waiter> {
        self.queue.iter().find(|w| &w.key == key)
    }

    pub fn remove(&mut self, key: &LockKey) -> Option<Waiter> {
        let at = self.position(key)?;
        self.queue.remove(at)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Waiter> {
        self.queue.iter()
    }
}
