//! Refusals of the lock state machine.
//!
//! A refusal is a reply, computed inside apply from replicated state, so every
//! replica refuses the same command the same way. A refused command changes
//! nothing. Messages are lowercase and say what to do; the mapping of each
//! variant to a wire code lives in `crate::error`, outside this pure core.

use serde::{Deserialize, Serialize};

use super::Mode;

/// Why the table refused a command, or why a wait ended without a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LockError {
    #[error("lock name is empty: give a name of 1 to {max} bytes")]
    EmptyName { max: usize },
    #[error("lock name is {len} bytes, over the limit of {max}: use a shorter name")]
    NameTooLong { len: usize, max: usize },
    #[error("key of {len} bytes is malformed: use 1 to 64 bytes of [A-Za-z0-9._:-]")]
    InvalidKey { len: usize },
    #[error("size {size} is out of range: use 1 (a mutex) to {max}")]
    InvalidSize { size: u32, max: u32 },
    #[error("{permits} permits asked of a lock of size {size}: ask for 1 to {size}")]
    InvalidPermits { permits: u32, size: u32 },
    #[error("lease ttl of {ttl_ms} ms is out of range: use {min_ms} to {max_ms} ms")]
    InvalidTtl { ttl_ms: u64, min_ms: u64, max_ms: u64 },
    #[error("wait timeout of {wait_ms} ms is over the limit of {max_ms} ms: wait less")]
    InvalidWait { wait_ms: u64, max_ms: u64 },
    #[error("the lock has size {size} but the request says {asked}: use size {size} or another name")]
    SizeMismatch { size: u32, asked: u32 },
    #[error("the key holds {held} permits of this lock, not {asked}: release it first or use another key")]
    KeyInUse { held: u32, asked: u32 },
    #[error("the key does not hold this lock (released, expired or never granted): acquire it again")]
    NotHolder,
    #[error("the key is not waiting on this lock: it was granted, timed out or cancelled")]
    NotWaiting,
    #[error("the lock is held: retry later, or acquire with a wait timeout")]
    Busy,
    #[error("the lock already has {max} waiters: retry later")]
    TooManyWaiters { max: usize },
    #[error("no such lock: check the name")]
    NotFound,
    #[error("the lease was refreshed or granted again after this expiry was proposed: nothing expired")]
    StaleExpiry,
    #[error("the lock is in use again: nothing collected")]
    NotIdle,
    #[error("the wait timed out before the lock was granted: retry or wait longer")]
    WaitTimedOut,
    #[error("the wait was cancelled before the lock was granted")]
    WaitCancelled,
    #[error("shared mode is for locks of size 1 and this one has size {size}: acquire it exclusive")]
    SharedSemaphore { size: u32 },
    #[error(
        "the key holds or waits for this lock {held}, not {asked}: release it first (a shared hold is never upgraded)"
    )]
    ModeInUse { held: Mode, asked: Mode },
    #[error("value of {len} bytes is over the limit of {max}: send a smaller value")]
    ValueTooLarge { len: usize, max: usize },
}
