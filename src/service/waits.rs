//! Blocking acquires waiting on this node.
//!
//! A client's blocking acquire waits on the node it is connected to when
//! that node holds a replica of the lock's group (it learns of its grant by
//! applying it); otherwise on a node that does (`acquire_elsewhere`).
//! Invariants: a wait is registered *before* its acquire is proposed, so a
//! grant applied before the proposal's answer arrives is not missed; each
//! registration is answered at most once; the map holds only waits whose
//! request is still in flight (the request unregisters on every exit).

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::lock::{Effect, EndReason, Grant, LockError, LockKey, Name};
use crate::routing::GroupId;

/// How a wait ended: a grant, or why not (from the log, or this node draining).
pub type WaitResult = Result<Grant, ApiError>;

type WaitId = (GroupId, Name, LockKey);

#[derive(Default)]
pub struct Waits {
    map: DashMap<WaitId, oneshot::Sender<WaitResult>>,
}

impl Waits {
    /// Registers interest in the fate of `key` on lock `name`.
    pub fn register(&self, group: GroupId, name: &str, key: &LockKey) -> oneshot::Receiver<WaitResult> {
        let (tx, rx) = oneshot::channel();
        self.map.insert((group, Name::from(name), key.clone()), tx);
        rx
    }

    pub fn unregister(&self, group: GroupId, name: &str, key: &LockKey) {
        self.map.remove(&(group, Name::from(name), key.clone()));
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Answers every wait with `err` (the node is draining: the clients
    /// retry elsewhere with the same key and keep their place in the queue).
    pub fn fail_all(&self, err: &ApiError) {
        let ids: Vec<WaitId> = self.map.iter().map(|e| e.key().clone()).collect();
        for id in ids {
            if let Some((_, tx)) = self.map.remove(&id) {
                let _ = tx.send(Err(err.clone()));
            }
        }
    }

    /// Answers the waits that the effects of one applied entry settle.
    pub fn on_effects(&self, group: GroupId, effects: &[Effect]) {
        if self.map.is_empty() {
            return;
        }
        for effect in effects {
            let (name, key, result) = match effect {
                Effect::Granted { name, grant, .. } => (name, &grant.key, Ok(grant.clone())),
                Effect::WaitEnded { name, key, reason } => {
                    let err = match reason {
                        EndReason::TimedOut => LockError::WaitTimedOut,
                        _ => LockError::WaitCancelled,
                    };
                    (name, key, Err(ApiError::from(err)))
                }
                _ => continue,
            };
            if let Some((_, tx)) = self.map.remove(&(group, name.clone(), key.clone())) {
                let _ = tx.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_timeouts_reach_their_waiter_only() {
        let waits = Waits::default();
        let (k1, k2) = (LockKey::new("k1").unwrap(), LockKey::new("k2").unwrap());
        let mut rx1 = waits.register(3, "a", &k1);
        let mut rx2 = waits.register(3, "a", &k2);
        let grant = Grant { key: k1.clone(), token: 9, permits: 1, ttl_ms: 1000, lease_index: 4 };
        waits.on_effects(2, &[Effect::Granted { name: "a".into(), grant: grant.clone(), handoff: true }]);
        assert!(rx1.try_recv().is_err(), "another group's grant must not answer");
        waits.on_effects(3, &[Effect::Granted { name: "a".into(), grant: grant.clone(), handoff: true }]);
        assert_eq!(rx1.try_recv().unwrap(), Ok(grant));
        let ended = Effect::WaitEnded { name: "a".into(), key: k2, reason: EndReason::TimedOut };
        waits.on_effects(3, &[ended]);
        assert_eq!(rx2.try_recv().unwrap(), Err(ApiError::from(LockError::WaitTimedOut)));
        assert!(waits.is_empty());
    }
}
