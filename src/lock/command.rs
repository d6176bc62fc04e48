//! What one committed log entry asks of a group's lock table.
//!
//! Commands carry everything apply needs: keys are chosen before proposal,
//! and time appears only as durations (TTL, wait) or as the log index a
//! leader saw when it decided that a deadline passed. Commands proposed by
//! the leader name the exact lease or wait they end (`lease_index`,
//! `enqueue_index`), so an expiry that raced with a refresh does nothing.

use serde::{Deserialize, Serialize};

use super::LockKey;

/// One acquire request, blocking (`wait_ms > 0`) or try-lock (`wait_ms == 0`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireCmd {
    pub name: String,
    pub key: LockKey,
    /// 1 for a mutex, N for a counting semaphore; fixed by the first acquirer.
    pub size: u32,
    /// Permits wanted, all or nothing.
    pub permits: u32,
    /// Lease TTL the grant will carry.
    pub ttl_ms: u64,
    /// How long the request may queue; 0 refuses at once with `Busy`.
    pub wait_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Acquire(AcquireCmd),
    /// The holder gives its permits back.
    Release {
        name: String,
        key: LockKey,
    },
    /// The holder extends its lease; `ttl_ms` replaces the previous TTL.
    Refresh {
        name: String,
        key: LockKey,
        /// The new TTL; `None` keeps the current one.
        ttl_ms: Option<u64>,
    },
    /// Proposed by the leader when the lease granted or refreshed at
    /// `lease_index` ran out on its clock.
    Expire {
        name: String,
        key: LockKey,
        lease_index: u64,
    },
    /// Proposed by the leader when the wait queued at `enqueue_index` ran out.
    WaitTimeout {
        name: String,
        key: LockKey,
        enqueue_index: u64,
    },
    /// Proposed by the node whose client stopped waiting (timeout, gone).
    CancelWait {
        name: String,
        key: LockKey,
    },
    /// Admin: release one holder, or every holder when `key` is `None`.
    ForceRelease {
        name: String,
        key: Option<LockKey>,
    },
    /// Proposed by the leader when a lock idle since `idle_since` outlived
    /// the grace period.
    GcIdle {
        name: String,
        idle_since: u64,
    },
}

impl Command {
    /// The lock this command is about (every command names exactly one).
    pub fn name(&self) -> &str {
        match self {
            Command::Acquire(a) => &a.name,
            Command::Release { name, .. }
            | Command::Refresh { name, .. }
            | Command::Expire { name, .. }
            | Command::WaitTimeout { name, .. }
            | Command::CancelWait { name, .. }
            | Command::ForceRelease { name, .. }
            | Command::GcIdle { name, .. } => name,
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Acquire(a) => write!(
                f,
                "acquire({:?}, key={}, size={}, permits={}, ttl={}ms, wait={}ms)",
                a.name, a.key, a.size, a.permits, a.ttl_ms, a.wait_ms
            ),
            Command::Release { name, key } => write!(f, "release({name:?}, key={key})"),
            Command::Refresh { name, key, ttl_ms } => match ttl_ms {
                Some(ttl) => write!(f, "refresh({name:?}, key={key}, ttl={ttl}ms)"),
                None => write!(f, "refresh({name:?}, key={key})"),
            },
            Command::Expire { name, key, lease_index } => {
                write!(f, "expire({name:?}, key={key}, lease_index={lease_index})")
            }
            Command::WaitTimeout { name, key, enqueue_index } => {
                write!(f, "wait_timeout({name:?}, key={key}, enqueue_index={enqueue_index})")
            }
            Command::CancelWait { name, key } => write!(f, "cancel_wait({name:?}, key={key})"),
            Command::ForceRelease { name, key } => match key {
                Some(key) => write!(f, "force_release({name:?}, key={key})"),
                None => write!(f, "force_release({name:?}, all)"),
            },
            Command::GcIdle { name, idle_since } => {
                write!(f, "gc_idle({name:?}, idle_since={idle_since})")
            }
        }
    }
}
