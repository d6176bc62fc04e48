//! Watch: the changes of locks, pushed to watchers as this node applies
//! them.
//!
//! - [`event`]: what one applied entry changed, as a watcher sees it,
//!   derived from the apply's effects (never from a leader's memory);
//! - [`history`]: per group, the events of the entries applied lately,
//!   bounded (`watch_history`) and without gaps;
//! - [`feed`]: one watcher's stream: the events of its locks, in log
//!   order per group, from the index it asked for, with progress while
//!   nothing changes and `Compacted` when its history is gone;
//! - [`relay`]: for a group this node holds no replica of, a copy of its
//!   history fed from a node that does.
//!
//! Invariants: every replica derives the same events from the same entries
//! (apply is deterministic), so a watcher that resumes on another node
//! with the index it reached misses nothing and sees nothing twice; a
//! group's history holds every event of every entry from its oldest index
//! to the applied one, or the watcher is told `Compacted`.

pub mod event;
pub mod feed;
pub mod history;
pub mod relay;

pub use event::{Event, Kind};
pub use feed::{Cursor, Feed, Filter, Item};
pub use history::History;
