//! Session upkeep: the grants a session keeps alive are refreshed, and
//! those of an ended session released, by the node on its behalf.
//!
//! Invariant: this work runs in background tasks and never while draining
//! is refused (it uses the unchecked writes).

use std::sync::Arc;
use std::time::Instant;

use super::{AcquireParams, LockService};
use crate::lock::Grant;
use crate::server::sessions::Hold;

impl LockService {
    /// Releases `holds` in the background (their session ended).
    pub fn release_holds(self: &Arc<Self>, holds: Vec<Hold>) {
        for hold in holds {
            let service = self.clone();
            tokio::spawn(async move {
                if let Err(err) = service.release_unchecked(hold.name.clone(), hold.key.clone()).await {
                    if !err.code.means_not_held() {
                        tracing::warn!(error = %err, "releasing a grant of an ended session failed");
                    }
                }
            });
        }
    }

    /// One round of session upkeep: ends expired sessions and refreshes the
    /// leases of the holds that live sessions keep alive.
    pub fn session_tick(self: &Arc<Self>, now: Instant) {
        for id in self.sessions.expired(now) {
            let holds = self.sessions.close(id);
            self.release_holds(holds);
        }
        for hold in self.sessions.due_refreshes(now) {
            let service = self.clone();
            tokio::spawn(async move {
                let refreshed = service.refresh_unchecked(hold.name.clone(), hold.key.clone(), Some(hold.ttl_ms)).await;
                if refreshed.is_err_and(|e| e.code.means_not_held()) {
                    service.sessions.remove_hold(&hold.name, &hold.key);
                }
            });
        }
    }

    pub(super) fn record_hold(&self, p: &AcquireParams, grant: &Grant) {
        if let Some((id, auto_refresh)) = p.session {
            let hold = Hold { name: p.name.clone(), key: grant.key.clone(), auto_refresh, ttl_ms: grant.ttl_ms };
            if self.sessions.add_hold(id, hold).is_err() {
                // The session ended while the acquire was in flight.
                tracing::debug!(session = id, "grant outlived its session; its lease will expire");
            }
        }
    }
}
