//! The result of applying one command: a reply and its effects, as data.
//!
//! The reply goes to whoever proposed the command. Effects tell every replica
//! what changed, so the runtime around the table can wake a blocked client
//! (`Granted`), arm or disarm lease and wait deadlines on the leader, count
//! metrics, or schedule GC (`Idle`). Effects are listed in the order they
//! happened inside the apply step.

use serde::{Deserialize, Serialize};

use super::{LockError, LockKey, Mode, Name, Value};

/// A granted hold: the key, its fencing tokens, its mode, its lease and the
/// value it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub key: LockKey,
    /// First fencing token; the grant owns `token..token + permits`.
    pub token: u64,
    pub permits: u32,
    pub mode: Mode,
    pub ttl_ms: u64,
    /// Log index of the grant or of the last refresh: the lease runs from it.
    pub lease_index: u64,
    pub value: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The acquire was granted now (or, for a retry with the same key,
    /// earlier: the same grant comes back with its lease refreshed).
    Granted(Grant),
    /// The acquire waits; `position` is 0 for the head of the queue.
    Queued {
        position: u32,
        enqueue_index: u64,
    },
    Released,
    Refreshed(Grant),
    Expired,
    WaitEnded,
    ForceReleased {
        holders: u32,
    },
    Collected,
    /// The holder's value changed; the hold as it is now.
    ValueSet(Grant),
    /// The holder turned shared; the hold as it is now.
    Downgraded(Grant),
}

/// Why a hold or a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    Released,
    Expired,
    Forced,
    TimedOut,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// `handoff` is true when the grant went to a queued waiter.
    Granted {
        name: Name,
        grant: Grant,
        handoff: bool,
    },
    Queued {
        name: Name,
        key: LockKey,
        permits: u32,
        mode: Mode,
        wait_ms: u64,
        enqueue_index: u64,
    },
    Refreshed {
        name: Name,
        key: LockKey,
        /// The hold's first fencing token: names it within the group.
        token: u64,
        ttl_ms: u64,
        lease_index: u64,
    },
    HoldEnded {
        name: Name,
        key: LockKey,
        /// The hold's first fencing token: names it within the group.
        token: u64,
        permits: u32,
        mode: Mode,
        reason: EndReason,
        /// The value the holder carried.
        value: Option<Value>,
    },
    WaitEnded {
        name: Name,
        key: LockKey,
        reason: EndReason,
    },
    /// A holder's value changed (`None`: cleared).
    ValueChanged {
        name: Name,
        key: LockKey,
        token: u64,
        value: Option<Value>,
    },
    /// An exclusive holder turned shared.
    Downgraded {
        name: Name,
        key: LockKey,
        token: u64,
    },
    /// The lock has no holder and no waiter since log index `since`.
    Idle {
        name: Name,
        since: u64,
    },
    /// The lock was garbage-collected.
    Removed {
        name: Name,
    },
}

/// The reply (or refusal) and the effects of one apply step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub reply: Result<Reply, LockError>,
    pub effects: Vec<Effect>,
}

impl Outcome {
    pub fn refused(err: LockError) -> Self {
        Self { reply: Err(err), effects: Vec::new() }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reply {
            Ok(reply) => write!(f, "{reply:?}"),
            Err(err) => write!(f, "refused: {err}"),
        }
    }
}
