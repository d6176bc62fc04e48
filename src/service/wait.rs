//! A blocking acquire's wait on this node.
//!
//! Invariants: the wait is registered before its acquire is proposed (so a
//! grant applied before the proposal's answer is not missed); once the
//! acquire is queued the guard is armed, and dropping an armed guard (the
//! client went away) proposes `CancelWait` — unless another request of this
//! node still waits for the same lock and key (a client's retry), whose
//! wait it would end; a wait that runs out times itself out in the log, and a
//! timeout that finds the key no longer waiting (or its lock gone) settles
//! on what this node applies (the grant, or the leader's timeout).

use std::sync::Arc;
use std::time::Duration;

use super::errors::internal;
use super::routing::Routing;
use super::waits::{Registration, WaitResult, Waits};
use crate::error::ApiError;
use crate::lock::{Command, Grant, LockError, LockKey};
use crate::routing::GroupId;

/// A registered blocking wait. Armed once the acquire is queued: dropping
/// an armed guard (the client went away) proposes `CancelWait`.
pub struct WaitGuard {
    waits: Arc<Waits>,
    routing: Arc<Routing>,
    registration: Registration,
    group: GroupId,
    name: String,
    key: LockKey,
    rx: Option<tokio::sync::oneshot::Receiver<WaitResult>>,
    armed: bool,
}

impl WaitGuard {
    pub fn register(waits: &Arc<Waits>, routing: &Arc<Routing>, group: GroupId, name: &str, key: &LockKey) -> Self {
        let (registration, rx) = waits.register(group, name, key);
        let (waits, routing, name) = (waits.clone(), routing.clone(), name.to_owned());
        Self { waits, routing, registration, group, name, key: key.clone(), rx: Some(rx), armed: false }
    }

    pub fn arm(&mut self) {
        self.armed = true;
    }

    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Waits for the grant; at the deadline, ends the wait queued at
    /// `enqueue_index` in the log, as the leader's timeout would (so a
    /// watcher sees `timed_out` whichever of the two comes first).
    pub async fn wait(&mut self, wait: Duration, enqueue_index: u64) -> Result<Grant, ApiError> {
        let Some(mut rx) = self.rx.take() else {
            return Err(internal("wait polled twice"));
        };
        tokio::select! {
            result = &mut rx => {
                self.disarm();
                settle(result)
            }
            _ = tokio::time::sleep(wait) => {
                if self.waits.shared(&self.registration) {
                    // A retry of this request waits on: its wait goes on.
                    self.disarm();
                    return Err(LockError::WaitTimedOut.into());
                }
                let end = Command::WaitTimeout { name: self.name.clone(), key: self.key.clone(), enqueue_index };
                let cancelled = self.routing.propose(self.group, &end).await;
                self.disarm();
                match cancelled.map(|a| a.outcome.reply) {
                    Ok(Ok(_)) => Err(LockError::WaitTimedOut.into()),
                    // Not waiting any more: granted, or timed out by the
                    // leader (which may have deleted the emptied lock since);
                    // this node learns which when it applies that entry.
                    Ok(Err(LockError::NotWaiting | LockError::NotFound)) => self.settle_late(rx).await,
                    Ok(Err(err)) => Err(err.into()),
                    Err(err) => Err(err),
                }
            }
        }
    }

    async fn settle_late(&self, rx: tokio::sync::oneshot::Receiver<WaitResult>) -> Result<Grant, ApiError> {
        match tokio::time::timeout(self.routing.retry_window(), rx).await {
            Ok(result) => settle(result),
            Err(_) => Err(LockError::WaitTimedOut.into()),
        }
    }
}

fn settle(result: Result<WaitResult, tokio::sync::oneshot::error::RecvError>) -> Result<Grant, ApiError> {
    match result {
        Ok(Ok(grant)) => Ok(grant),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(internal("the wait registry dropped a registered waiter")),
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let others_wait = self.waits.unregister(&self.registration);
        if !self.armed || others_wait {
            return;
        }
        let (routing, group) = (self.routing.clone(), self.group);
        let cancel = Command::CancelWait { name: std::mem::take(&mut self.name), key: self.key.clone() };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(err) = routing.propose(group, &cancel).await {
                    tracing::warn!(group, error = %err, "cancelling an abandoned wait failed");
                }
            });
        }
    }
}
