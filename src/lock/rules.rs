//! The versions of the apply rules.
//!
//! A log entry is applied under the rules it was proposed with, so that
//! replaying a log written by an older shardlock gives the table that
//! shardlock built then. The rules differ only in what happens to a lock
//! left with no holder and no waiter.
//!
//! Invariant: a new entry is always proposed under [`Rules::CURRENT`]; older
//! rules are only ever met in entries read back from an older log.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rules {
    /// Entries of data format 1 (the JSON log of older versions): an emptied
    /// lock stays in the table, idle, until
    /// the leader proposes a `GcIdle` for it after a grace period.
    V1,
    /// Since then: the apply that leaves a lock with no holder and no waiter
    /// (release, expiry, force-release, cancel, wait timeout) deletes it, in
    /// the same step (one Raft write less per lock cycle). The fencing
    /// counter belongs to the group, so tokens keep increasing. A command on
    /// a deleted lock is refused with `NotFound`, as on one never created; so
    /// a late or retried release meets `NotFound` where it met `NotHolder`
    /// under V1, and the retry rules take either as "already released".
    V2,
}

impl Rules {
    /// The rules new entries are proposed under.
    pub const CURRENT: Rules = Rules::V2;

    /// Whether an emptied lock is deleted by the apply that emptied it.
    pub fn collects_in_apply(self) -> bool {
        self == Rules::V2
    }
}
