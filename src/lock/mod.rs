//! The lock state machine of one Raft group: pure, deterministic and total.
//!
//! Every replica of a group feeds the same committed commands, in the same
//! order, to [`LockTable::apply`] and reaches the same state. The module
//! reads no clock, draws no random number, does no I/O and never panics:
//! time enters only as commands proposed by the group leader
//! ([`Command::Expire`], [`Command::WaitTimeout`], and [`Command::GcIdle`] for
//! idle locks left by logs of the [`Rules::V1`] era), and
//! keys are chosen before a command is proposed.
//!
//! Layout:
//! - [`command`]: what a log entry asks of the table;
//! - [`outcome`]: the reply and the effects of applying one command;
//! - [`rules`]: the versions of the apply rules (what an emptied lock becomes);
//! - [`table`]: the locks of one group and `apply`;
//! - [`semaphore`]: one sized lock, its holders and its queue;
//! - [`waiters`]: the FIFO queue of one lock;
//! - [`holders`]: the holders of one lock, a small sorted map;
//! - [`mode`]: exclusive and shared holds;
//! - [`value`], [`values`]: what a holder may carry, kept beside the locks;
//! - [`fence`]: the per-group grant counter behind fencing tokens;
//! - [`key`], [`limits`], [`error`]: holder keys, input bounds, refusals;
//! - [`snapshot`] (and `snapshot_v1`): the serialisable image of a table.
//!
//! Invariants, checked by `table_test.rs` (traces) and `prop_test.rs`
//! (random command sequences):
//! - the permits held of a lock never exceed its size;
//! - an exclusive holder never holds beside a shared one, shared holders
//!   only hold a lock of size 1, and a downgrade keeps the lock held;
//! - waiters are granted in FIFO order and nobody barges past a queue;
//! - every grant takes fresh tokens from the group counter, so the tokens of
//!   a lock strictly increase across hand-offs, expiry, deletion and snapshots;
//! - under the current rules no lock is ever idle: the apply that empties a
//!   lock deletes it;
//! - a refused command changes nothing.

pub mod command;
pub mod error;
pub mod fence;
pub mod holders;
pub mod key;
pub mod limits;
pub mod mode;
pub mod outcome;
pub mod rules;
pub mod semaphore;
pub mod snapshot;
mod snapshot_v1;
pub mod table;
pub mod value;
pub mod values;
pub mod waiters;

pub use command::{AcquireCmd, AcquireV1, Command};
pub use error::LockError;
pub use fence::FenceCounter;
pub use holders::{Holder, Holders};
pub use key::{LockKey, Name};
pub use limits::Limits;
pub use mode::Mode;
pub use outcome::{Effect, EndReason, Grant, Outcome, Reply};
pub use rules::Rules;
pub use semaphore::Lock;
pub use snapshot::{SnapshotError, TableSnapshot};
pub use table::{LockSummary, LockTable};
pub use value::Value;
pub use values::Values;
pub use waiters::{WaitQueue, Waiter};

#[cfg(test)]
mod prop_test;
#[cfg(test)]
mod table_test;
