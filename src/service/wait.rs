//! A blocking acquire's wait on this node.
//!
//! Invariants: the wait is registered before its acquire is proposed (so a
//! grant applied before the proposal's answer is not missed); once the
//! acquire is queued the guard is armed, and dropping an armed guard (the
//! client went away) proposes `CancelWait`; a wait that runs out cancels
//! itself in the log, and a cancel that finds the key no longer waiting
//! settles on whatever this node applies next (grant or timeout).

use std::sync::Arc;
use std::time::Duration;

use super::errors::internal;
use super::routing::Routing;
use super::waits::{WaitResult, Waits};
use crate::error::ApiError;
use crate::lock::{Command, Grant, LockError, LockKey};
use crate::routing::GroupId;

/// A registered blocking wait. Armed once the acquire is queued: dropping
/// an armed guard (the client went away) proposes `CancelWait`.
pub struct WaitGuard {
    waits: Arc<Waits>,
    routing: Arc<Routing>,
    group: GroupId,
    name: String,
    key: LockKey,
    rx: Option<tokio::sync::oneshot::Receiver<WaitResult>>,
    armed: bool,
}

impl WaitGuard {
    pub fn register(waits: &Arc<Waits>, routing: &Arc<Routing>, group: GroupId, name: &str, key: &LockKey) -> Self {
        let rx = Some(waits.register(group, name, key));
        let (waits, routing) = (waits.clone(), routing.clone());
        Self { waits, routing, group, name: name.to_owned(), key: key.clone(), rx, armed: false }
    }

    pub fn arm(&mut self) {
        self.armed = true;
    }

    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Waits for the grant; at the deadline, cancels the wait in the log.
    pub async fn wait(&mut self, wait: Duration) -> Result<Grant, ApiError> {
        let Some(mut rx) = self.rx.take() else {
            return Err(internal("wait polled twice"));
        };
        tokio::select! {
            result = &mut rx => {
                self.disarm();
                settle(result)
            }
            _ = tokio::time::sleep(wait) => {
                let cancel = Command::CancelWait { name: self.name.clone(), key: self.key.clone() };
                let cancelled = self.routing.propose(self.group, &cancel).await;
                self.disarm();
                match cancelled.map(|a| a.outcome.reply) {
                    Ok(Ok(_)) => Err(LockError::WaitTimedOut.into()),
                    // Not waiting any more: granted or timed out just before;
                    // this node learns which when it applies that entry.
                    Ok(Err(LockError::NotWaiting)) => self.settle_late(rx).await,
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
        Err(_) => Err(internal("the wait registry dropped a waiter")),
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waits.unregister(self.group, &self.name, &self.key);
        if !self.armed {
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
