//! The serialisable image of a lock table.
//!
//! Invariants: a snapshot holds the whole replicated state — the grant
//! counter and every lock, idle ones included — so restoring it gives an
//! identical table with identical future outcomes; fencing tokens keep
//! increasing across snapshots. The image is versioned: openraft's and
//! serde's formats are not stable, and a node must refuse what it cannot read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FenceCounter, Lock, Name};

/// Format version written into every snapshot.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    version: u32,
    fence: FenceCounter,
    locks: BTreeMap<Name, Lock>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "snapshot format version {found} is not supported (this build reads {SNAPSHOT_VERSION}): upgrade shardlock"
    )]
    Version { found: u32 },
    #[error("snapshot is corrupt at lock {name:?}: {why}")]
    Corrupt { name: String, why: String },
}

impl TableSnapshot {
    pub(super) fn new(fence: FenceCounter, locks: BTreeMap<Name, Lock>) -> Self {
        Self { version: SNAPSHOT_VERSION, fence, locks }
    }

    pub(super) fn into_parts(self) -> Result<(FenceCounter, BTreeMap<Name, Lock>), SnapshotError> {
        if self.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found: self.version });
        }
        Ok((self.fence, self.locks))
    }

    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }
}
