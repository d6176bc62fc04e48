//! The serialisable image of a lock table.
//!
//! Invariants: a snapshot holds the whole replicated state — the grant
//! counter, every lock (idle ones included) and the holders' values — so
//! restoring it gives an identical table with identical future outcomes;
//! fencing tokens keep increasing across snapshots. The image is versioned:
//! openraft's and serde's formats are not stable, and a node must refuse
//! what it cannot read. Version 1 (before modes and values) still reads:
//! [`super::snapshot_v1`] holds its layout.

use std::collections::BTreeMap;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::snapshot_v1::LockV1;
use super::{FenceCounter, Lock, Name, Values};

/// Format version written into every snapshot.
pub const SNAPSHOT_VERSION: u32 = 2;

/// Serialised as `(version, fence, locks, values)`; version 1 was
/// `(1, fence, locks)` with the older layout of a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableSnapshot {
    version: u32,
    fence: FenceCounter,
    locks: BTreeMap<Name, Lock>,
    values: Values,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "snapshot format version {found} is not supported (this build reads 1 to {SNAPSHOT_VERSION}): upgrade shardlock"
    )]
    Version { found: u32 },
    #[error("snapshot is corrupt at lock {name:?}: {why}")]
    Corrupt { name: String, why: String },
}

impl TableSnapshot {
    pub(super) fn new(fence: FenceCounter, locks: BTreeMap<Name, Lock>, values: Values) -> Self {
        Self { version: SNAPSHOT_VERSION, fence, locks, values }
    }

    pub(super) fn into_parts(self) -> Result<(FenceCounter, BTreeMap<Name, Lock>, Values), SnapshotError> {
        if self.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found: self.version });
        }
        Ok((self.fence, self.locks, self.values))
    }

    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    fn from_v1(fence: FenceCounter, locks: BTreeMap<Name, LockV1>) -> Self {
        let locks = locks.into_iter().map(|(name, lock)| (name, lock.into())).collect();
        Self::new(fence, locks, Values::default())
    }
}

const FIELDS: &[&str] = &["version", "fence", "locks", "values"];

/// Reads either version: the version comes first and says what follows.
impl<'de> Deserialize<'de> for TableSnapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("TableSnapshot", FIELDS, Image)
    }
}

struct Image;

fn unsupported<E: de::Error>(found: u32) -> E {
    E::custom(SnapshotError::Version { found })
}

impl<'de> Visitor<'de> for Image {
    type Value = TableSnapshot;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a lock table snapshot")
    }

    /// postcard: the fields in order.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TableSnapshot, A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"a snapshot's version, fence and locks");
        let version: u32 = seq.next_element()?.ok_or_else(|| missing(0))?;
        let fence: FenceCounter = seq.next_element()?.ok_or_else(|| missing(1))?;
        match version {
            1 => Ok(TableSnapshot::from_v1(fence, seq.next_element()?.ok_or_else(|| missing(2))?)),
            SNAPSHOT_VERSION => {
                let locks = seq.next_element()?.ok_or_else(|| missing(2))?;
                let values = seq.next_element()?.ok_or_else(|| missing(3))?;
                Ok(TableSnapshot::new(fence, locks, values))
            }
            found => Err(unsupported(found)),
        }
    }

    /// JSON (format 1 of older versions, and tests): named fields, the
    /// version first.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TableSnapshot, A::Error> {
        let version = match map.next_key::<String>()?.as_deref() {
            Some("version") => map.next_value::<u32>()?,
            _ => return Err(de::Error::custom("a snapshot must begin with its version")),
        };
        if version != 1 && version != SNAPSHOT_VERSION {
            return Err(unsupported(version));
        }
        let (mut fence, mut v1, mut locks, mut values) = (None, None, None, Values::default());
        while let Some(field) = map.next_key::<String>()? {
            match (field.as_str(), version) {
                ("fence", _) => fence = Some(map.next_value()?),
                ("locks", 1) => v1 = Some(map.next_value::<BTreeMap<Name, LockV1>>()?),
                ("locks", _) => locks = Some(map.next_value()?),
                ("values", _) => values = map.next_value()?,
                (other, _) => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        let fence = fence.ok_or_else(|| de::Error::missing_field("fence"))?;
        match (v1, locks) {
            (Some(v1), _) => Ok(TableSnapshot::from_v1(fence, v1)),
            (None, Some(locks)) => Ok(TableSnapshot::new(fence, locks, values)),
            (None, None) => Err(de::Error::missing_field("locks")),
        }
    }
}
