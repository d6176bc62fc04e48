//! Durable storage of a node: one RocksDB shared by every Raft group.
//!
//! Invariants: column families are per kind of data, never per group; every
//! key starts with the group id in big-endian, then (for the log) the index
//! in big-endian, so one group's entries are contiguous and ordered, and a
//! purge is one `delete_range`.

pub mod db;
pub mod identity;
pub mod keys;
pub mod syncer;

pub use db::{Db, StorageError};
