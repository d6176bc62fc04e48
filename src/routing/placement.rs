//! Placement: which nodes hold a group, and which of them should lead it.
//!
//! v1 places every group on every voter. Keeping placement behind
//! [`replicas`] lets replica sets smaller than the cluster come later
//! without touching the lock code. Leaders spread evenly: the preferred
//! leader of group `g` is the `g % N`-th replica in id order.

use super::GroupId;

/// The voters that hold `group`, in id order.
pub fn replicas(_group: GroupId, voters: &[u64]) -> Vec<u64> {
    let mut ids = voters.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The node that should lead `group` when it is healthy.
pub fn preferred_leader(group: GroupId, voters: &[u64]) -> Option<u64> {
    let ids = replicas(group, voters);
    (!ids.is_empty()).then(|| ids[group as usize % ids.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_spread_evenly() {
        let voters = [3, 1, 2];
        let mut counts = [0; 4];
        for g in 0..64 {
            counts[preferred_leader(g, &voters).unwrap() as usize] += 1;
        }
        assert_eq!(&counts[1..], &[22, 21, 21]);
        assert_eq!(preferred_leader(0, &[]), None);
    }
}
