//! The layout of a lock in snapshots of version 1, written before modes
//! and values: read, converted, never written.
//!
//! Invariant: these types mirror, field for field and in order, what
//! version 1 serialised (postcard is positional), and convert to today's
//! lock with every holder and waiter exclusive and without a value.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;

use super::{Holder, Holders, Lock, LockKey, Mode, WaitQueue, Waiter};

#[derive(Deserialize)]
pub(super) struct LockV1 {
    size: u32,
    held: u32,
    holders: BTreeMap<LockKey, HolderV1>,
    waiters: QueueV1,
    idle_since: Option<u64>,
}

#[derive(Deserialize)]
struct HolderV1 {
    permits: u32,
    token: u64,
    ttl_ms: u64,
    lease_index: u64,
}

#[derive(Deserialize)]
struct QueueV1 {
    queue: VecDeque<WaiterV1>,
}

#[derive(Deserialize)]
struct WaiterV1 {
    key: LockKey,
    permits: u32,
    ttl_ms: u64,
    wait_ms: u64,
    enqueue_index: u64,
}

impl From<LockV1> for Lock {
    fn from(v1: LockV1) -> Self {
        let mut holders = Holders::default();
        for (key, h) in v1.holders {
            let (permits, token, ttl_ms, lease_index) = (h.permits, h.token, h.ttl_ms, h.lease_index);
            holders.insert(key, Holder { permits, mode: Mode::Exclusive, token, ttl_ms, lease_index });
        }
        let mut waiters = WaitQueue::default();
        for w in v1.waiters.queue {
            let (key, permits, ttl_ms, wait_ms, enqueue_index) =
                (w.key, w.permits, w.ttl_ms, w.wait_ms, w.enqueue_index);
            waiters.push(Waiter { key, permits, mode: Mode::Exclusive, ttl_ms, wait_ms, enqueue_index, value: None });
        }
        Lock::from_parts(v1.size, v1.held, holders, waiters, v1.idle_since)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LockTable, TableSnapshot};
    use crate::lock::Limits;

    /// A version-1 snapshot as postcard wrote it, byte by byte: lock "a"
    /// (size 1) held by "k1" with token 1, "k2" queued, next token 2.
    const WRITTEN_BY_V1: &[u8] = &[
        1, // version
        2, // fence: next token
        1, // one lock
        1, b'a', // its name
        1, 1, // size, held
        1, 2, b'k', b'1', 1, 1, 0xe8, 0x07, 1, // one holder: key, permits, token, ttl 1000, lease 1
        1, 2, b'k', b'2', 1, 0xe8, 0x07, 0x88, 0x27, 2, // one waiter: key, permits, ttl, wait 5000, enqueued 2
        0, // idle_since: none
    ];

    #[test]
    fn a_version_1_snapshot_opens() {
        let snapshot: TableSnapshot = postcard::from_bytes(WRITTEN_BY_V1).unwrap();
        let table = LockTable::restore(snapshot, Limits::default()).unwrap();
        let lock = table.get("a").unwrap();
        let holder = lock.holders().iter().next().unwrap();
        assert_eq!((holder.0.as_str(), holder.1.token, holder.1.mode), ("k1", 1, crate::lock::Mode::Exclusive));
        assert_eq!(lock.waiters().iter().map(|w| (w.key.as_str(), w.wait_ms)).collect::<Vec<_>>(), [("k2", 5000)]);
        assert_eq!(table.next_token(), 2);
        // Written again, it is version 2, and reads back the same.
        let again: TableSnapshot = postcard::from_bytes(&postcard::to_allocvec(&table.snapshot()).unwrap()).unwrap();
        assert_eq!(LockTable::restore(again, Limits::default()).unwrap(), table);
    }

    #[test]
    fn a_version_1_json_snapshot_opens_and_unknown_versions_are_refused() {
        let json = r#"{"version":1,"fence":{"next":2},"locks":{"a":{"size":1,"held":1,
            "holders":{"k1":{"permits":1,"token":1,"ttl_ms":1000,"lease_index":1}},
            "waiters":{"queue":[]},"idle_since":null}}}"#;
        let snapshot: TableSnapshot = serde_json::from_str(json).unwrap();
        assert_eq!(LockTable::restore(snapshot, Limits::default()).unwrap().len(), 1);
        let err = postcard::from_bytes::<TableSnapshot>(&[9, 2, 0]).unwrap_err().to_string();
        assert!(!err.is_empty());
        assert!(serde_json::from_str::<TableSnapshot>(r#"{"version":9}"#)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
    }
}
