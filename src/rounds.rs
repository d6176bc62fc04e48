//! The pace of a node's background loops: one round per period until the
//! node shuts down.
//!
//! Invariant: a loop never starts a round after the shutdown signal turned
//! true (or its sender is gone), and a sleeping loop wakes at once for it.

use std::time::Duration;

use tokio::sync::watch;

/// Sleeps `every`; false when `shutdown` turned true meanwhile (stop now).
pub async fn next(every: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => {}
        changed = shutdown.changed() => if changed.is_err() { return false },
    }
    !*shutdown.borrow()
}
