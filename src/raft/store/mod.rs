//! openraft's storage adapters, on the node's one RocksDB (`crate::storage`).
//!
//! - [`log`]: a group's log (`RaftLogStorage`): appends written unsynced,
//!   acknowledged after the shared WAL sync; vote, purge and truncation;
//! - [`tail_cache`]: the newest entries of a group's log, in memory;
//! - [`format1`]: log entries of the older JSON format, read back;
//! - [`snapshot`]: a group's latest snapshot at rest.
//!
//! The state machine itself (`raft::state_machine`) applies entries to the
//! lock table; openraft's conformance suite runs against both
//! (`conformance_test.rs`).

pub mod format1;
pub mod log;
pub mod snapshot;
pub mod tail_cache;

#[cfg(test)]
mod conformance_test;
