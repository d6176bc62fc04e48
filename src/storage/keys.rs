//! Key layout of the node's RocksDB (after TiKV's `keys` module).
//!
//! - `raft_log`:  group (u32 BE) ++ log index (u64 BE) → entry
//! - `raft_meta`: group (u32 BE) ++ tag (u8) → vote, purge point, …
//! - `snapshots`: group (u32 BE) → the group's latest snapshot
//!
//! Invariant: for a fixed group, byte order of keys equals numeric order of
//! log indexes, and the keys of group `g` sort before those of `g + 1`.

use crate::routing::GroupId;

pub const LOG_KEY_LEN: usize = 12;

pub fn log_key(group: GroupId, index: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[..4].copy_from_slice(&group.to_be_bytes());
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Splits a log key back into (group, index); `None` if malformed.
pub fn parse_log_key(key: &[u8]) -> Option<(GroupId, u64)> {
    let group = GroupId::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let index = u64::from_be_bytes(key.get(4..LOG_KEY_LEN)?.try_into().ok()?);
    (key.len() == LOG_KEY_LEN).then_some((group, index))
}

/// Kinds of per-group metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MetaTag {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
    /// The membership at which a leader said it removed this node.
    Departed = 4,
}

pub fn meta_key(group: GroupId, tag: MetaTag) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[..4].copy_from_slice(&group.to_be_bytes());
    key[4] = tag as u8;
    key
}

pub fn snapshot_key(group: GroupId) -> [u8; 4] {
    group.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_group_then_index_order() {
        let keys =
            [log_key(0, 0), log_key(0, 1), log_key(0, 255), log_key(0, 256), log_key(0, u64::MAX), log_key(1, 0)];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_log_key(&log_key(7, 99)), Some((7, 99)));
        assert_eq!(parse_log_key(b"short"), None);
        assert!(meta_key(0, MetaTag::LastPurged) < meta_key(1, MetaTag::Vote));
    }
}
