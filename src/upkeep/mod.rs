//! Upkeep: what a node does on time, not on request.
//!
//! - [`keeper`]: leader-side deadlines: leases that run out, waits that
//!   time out, idle locks of format-1 data; the one place that turns time
//!   into commands;
//! - [`leases`]: the keeper's compact record of held leases;
//! - [`sessions`]: grants that live as long as a client session, refreshed
//!   while it lives and released when it ends;
//! - [`gauges`]: each group's Raft state and table sizes as metrics.
//!
//! Each loop is a `run(…, shutdown)` paced by [`crate::rounds::next`].
//! Upkeep sits below the request path (`crate::service`), which reads the
//! keeper's deadlines and the session registry; the loops put commands in
//! a group's log through [`Propose`], which the request path implements, so
//! they batch and route exactly as clients' commands do.

pub mod gauges;
pub mod keeper;
pub mod leases;
pub mod sessions;

use futures::future::BoxFuture;

use crate::error::ApiError;
use crate::lock::{Command, Outcome};
use crate::routing::GroupId;

/// How upkeep's loops put a command in a group's log.
pub trait Propose: Send + Sync + 'static {
    /// Proposes `cmd` through this node's Raft only: a leader-side command,
    /// which a node that no longer leads the group must not forward.
    fn propose_here(&self, group: GroupId, cmd: Command) -> BoxFuture<'_, Result<Outcome, ApiError>>;
    /// Proposes `cmd` on `group`'s leader, wherever it is, retrying while
    /// the group elects one; also while the node drains.
    fn propose(&self, group: GroupId, cmd: Command) -> BoxFuture<'_, Result<Outcome, ApiError>>;
}
