//! The map from lock names to Raft groups.
//!
//! Invariant: `group_of` depends only on the name's bytes and the group
//! count `G`, which is fixed when a cluster is created and never changes
//! under it (a lock's fencing tokens live in its group's counter).

use xxhash_rust::xxh3::xxh3_64;

/// Index of a Raft group, `0..G`.
pub type GroupId = u32;

/// The group of lock `name` in a cluster of `groups` groups:
/// `xxh3_64(name) % groups`. A group count of 0 (refused by config
/// validation) is treated as 1 rather than dividing by zero.
pub fn group_of(name: &[u8], groups: u32) -> GroupId {
    (xxh3_64(name) % u64::from(groups.max(1))) as GroupId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned: changing the hash would move every lock of every cluster.
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
        assert_eq!(group_of(b"", 64), (0x2d06800538d394c2u64 % 64) as u32);
        assert_eq!(group_of(b"anything", 1), 0);
        assert_eq!(group_of(b"anything", 0), 0);
    }

    #[test]
    fn names_spread_over_groups() {
        let groups = 64;
        let mut counts = vec![0u32; groups as usize];
        for i in 0..64_000 {
            counts[group_of(format!("lock-{i}").as_bytes(), groups) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 800 && *max < 1200, "uneven spread: {min}..{max}");
    }
}
