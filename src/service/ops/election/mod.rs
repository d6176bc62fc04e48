//! Leader election, after etcd's `Election` service, on a lock of size 1.
//!
//! An election is the lock of the same name: its leader is the lock's
//! exclusive holder, the leader's value is the value that holder carries,
//! and the term is the holder's fencing token, so terms strictly increase
//! from one leader to the next. Campaigners wait in the lock's FIFO queue;
//! Proclaim is a value change guarded by the leader's key; Resign is a
//! release; Observe is the watch of the lock reduced to its leaders.
//!
//! Invariant: no call here holds lock logic of its own: each one is an
//! acquire, a value change, a release, a read or a watch of the lock.

pub mod campaign;
pub mod leader;
pub mod observe;
pub mod proclaim;
pub mod resign;

use crate::lock::{Grant, LockKey, Mode, Value};
use crate::service::query::HolderView;

/// Who leads an election, since which term, with what value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leadership {
    pub election: String,
    pub key: LockKey,
    /// The leader's fencing token.
    pub term: u64,
    pub value: Value,
    pub ttl_ms: u64,
}

impl Leadership {
    /// The leadership a grant of the election's lock gives.
    pub fn of_grant(election: &str, grant: &Grant) -> Self {
        Self {
            election: election.to_owned(),
            key: grant.key.clone(),
            term: grant.token,
            value: grant.value.clone().unwrap_or_default(),
            ttl_ms: grant.ttl_ms,
        }
    }

    /// The leadership of the election's holders, as Describe shows them:
    /// its exclusive holder, if it has one.
    pub fn of_holders(election: &str, holders: &[HolderView]) -> Option<Self> {
        let h = holders.iter().find(|h| h.mode == Mode::Exclusive)?;
        Some(Self {
            election: election.to_owned(),
            key: h.key.clone(),
            term: h.token,
            value: h.value.clone().unwrap_or_default(),
            ttl_ms: h.ttl_ms,
        })
    }
}
