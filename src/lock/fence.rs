//! The per-group grant counter behind fencing tokens.
//!
//! Invariants: the counter only grows; every permit granted takes its own
//! value, so a grant of `k` permits owns the tokens `first..first + k`. The
//! counter is part of the replicated state (and of snapshots), never derived
//! from the log index: one entry may grant several holders at once.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceCounter {
    /// The next token to hand out; tokens start at 1 so 0 means "none".
    next: u64,
}

impl Default for FenceCounter {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl FenceCounter {
    /// Takes `permits` consecutive tokens and returns the first.
    ///
    /// Saturates instead of wrapping: 2^64 grants are out of reach, and a
    /// wrapped counter would break fencing silently.
    pub fn issue(&mut self, permits: u32) -> u64 {
        let first = self.next;
        self.next = self.next.saturating_add(u64::from(permits));
        first
    }

    /// The token the next grant will start at.
    pub fn peek(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permit_takes_its_own_token() {
        let mut c = FenceCounter::default();
        assert_eq!(c.issue(1), 1);
        assert_eq!(c.issue(3), 2);
        assert_eq!(c.issue(1), 5);
        assert_eq!(c.peek(), 6);
    }
}
