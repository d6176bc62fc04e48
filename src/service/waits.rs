//! Blocking acquires waiting on this node.
//!
//! A client's blocking acquire waits on the node it is connected to when
//! that node holds a replica of the lock's group (it learns of its grant by
//! applying it); otherwise on a node that does (`ops::acquire`).
//!
//! Several requests may wait for the same (lock, key): a client that
//! retries with the same key while its first request is still in flight
//! here (a timed-out HTTP call, a forwarded wait sent again). Each is a
//! registration of its own, and all of them hear how the wait ended.
//!
//! A node whose replica of a group is removed applies none of its entries
//! after that, so its waits for that group's locks are answered with a
//! retryable error (`fail_group`): the clients retry with their keys on a
//! node that holds a replica, keeping their places in the queues.
//!
//! Invariants: a wait is registered *before* its acquire is proposed, so a
//! grant applied before the proposal's answer arrives is not missed; each
//! registration is answered at most once, and only removing it (its
//! request ended) takes it out — never another request's registration of
//! the same key; the map holds only waits whose request is still in flight.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::lock::{Effect, EndReason, Grant, LockError, LockKey, Name};
use crate::routing::GroupId;

/// How a wait ended: a grant, or why not (from the log, or this node draining).
pub type WaitResult = Result<Grant, ApiError>;

type WaitId = (GroupId, Name, LockKey);

/// One request's registration: the wait it is for, and its own number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    id: WaitId,
    seq: u64,
}

#[derive(Default)]
pub struct Waits {
    map: DashMap<WaitId, Vec<(u64, oneshot::Sender<WaitResult>)>>,
    next: AtomicU64,
    /// Registrations in the map: apply skips the map when there are none.
    registered: AtomicUsize,
}

impl Waits {
    /// Registers a request's interest in the fate of `key` on lock `name`.
    pub fn register(&self, group: GroupId, name: &str, key: &LockKey) -> (Registration, oneshot::Receiver<WaitResult>) {
        let (tx, rx) = oneshot::channel();
        let id = (group, Name::from(name), key.clone());
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.entry(id.clone()).or_default().push((seq, tx));
        self.registered.fetch_add(1, Ordering::Relaxed);
        (Registration { id, seq }, rx)
    }

    /// Whether another request than `reg`'s waits for the same lock and key
    /// here.
    pub fn shared(&self, reg: &Registration) -> bool {
        self.map.get(&reg.id).is_some_and(|regs| regs.iter().any(|(seq, _)| *seq != reg.seq))
    }

    /// Takes `reg` out; true when other requests still wait for the same
    /// lock and key here.
    pub fn unregister(&self, reg: &Registration) -> bool {
        let others = match self.map.get_mut(&reg.id) {
            Some(mut regs) => {
                let before = regs.len();
                regs.retain(|(seq, _)| *seq != reg.seq);
                self.registered.fetch_sub(before - regs.len(), Ordering::Relaxed);
                !regs.is_empty()
            }
            None => return false,
        };
        if !others {
            self.map.remove_if(&reg.id, |_, regs| regs.is_empty());
        }
        others
    }

    /// Answers every wait with `err` (the node is draining: the clients
    /// retry elsewhere with the same key and keep their place in the queue).
    pub fn fail_all(&self, err: &ApiError) {
        self.fail_where(|_| true, err);
    }

    /// Answers every wait for a lock of `group` with `err` (this node's
    /// replica of the group was removed: it will not apply their grants).
    pub fn fail_group(&self, group: GroupId, err: &ApiError) {
        self.fail_where(|id| id.0 == group, err);
    }

    fn fail_where(&self, which: impl Fn(&WaitId) -> bool, err: &ApiError) {
        let ids: Vec<WaitId> = self.map.iter().map(|e| e.key().clone()).filter(|id| which(id)).collect();
        for id in ids {
            self.answer(&id, Err(err.clone()));
        }
    }

    fn answer(&self, id: &WaitId, result: WaitResult) {
        if let Some((_, regs)) = self.map.remove(id) {
            self.registered.fetch_sub(regs.len(), Ordering::Relaxed);
            for (_, tx) in regs {
                let _ = tx.send(result.clone());
            }
        }
    }

    /// Answers the waits that the effects of one applied entry settle.
    pub fn on_effects(&self, group: GroupId, effects: &[Effect]) {
        if self.registered.load(Ordering::Relaxed) == 0 {
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
            self.answer(&(group, name.clone(), key.clone()), result);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_timeouts_reach_their_waiter_only() {
        let waits = Waits::default();
        let (k1, k2) = (LockKey::new("k1").unwrap(), LockKey::new("k2").unwrap());
        let (_, mut rx1) = waits.register(3, "a", &k1);
        let (_, mut rx2) = waits.register(3, "a", &k2);
        let (mode, value) = (crate::lock::Mode::Exclusive, None);
        let grant = Grant { key: k1.clone(), token: 9, permits: 1, mode, ttl_ms: 1000, lease_index: 4, value };
        waits.on_effects(2, &[Effect::Granted { name: "a".into(), grant: grant.clone(), handoff: true }]);
        assert!(rx1.try_recv().is_err(), "another group's grant must not answer");
        waits.on_effects(3, &[Effect::Granted { name: "a".into(), grant: grant.clone(), handoff: true }]);
        assert_eq!(rx1.try_recv().unwrap(), Ok(grant));
        let ended = Effect::WaitEnded { name: "a".into(), key: k2, reason: EndReason::TimedOut };
        waits.on_effects(3, &[ended]);
        assert_eq!(rx2.try_recv().unwrap(), Err(ApiError::from(LockError::WaitTimedOut)));
        assert!(waits.is_empty());
    }

    #[test]
    fn two_requests_for_one_key_both_hear_and_neither_unregisters_the_other() {
        let waits = Waits::default();
        let key = LockKey::new("k").unwrap();
        let (first, mut rx1) = waits.register(0, "a", &key);
        let (second, mut rx2) = waits.register(0, "a", &key);
        assert!(rx1.try_recv().is_err(), "the second registration leaves the first waiting");
        assert!(waits.unregister(&first), "the second request still waits");
        assert!(rx2.try_recv().is_err(), "ending the first leaves the second registered");
        let (third, mut rx3) = waits.register(0, "a", &key);
        let (mode, value) = (crate::lock::Mode::Exclusive, None);
        let grant = Grant { key: key.clone(), token: 1, permits: 1, mode, ttl_ms: 1000, lease_index: 2, value };
        waits.on_effects(0, &[Effect::Granted { name: "a".into(), grant: grant.clone(), handoff: true }]);
        assert_eq!((rx2.try_recv().unwrap(), rx3.try_recv().unwrap()), (Ok(grant.clone()), Ok(grant)));
        assert!(!waits.unregister(&second) && !waits.unregister(&third), "answered: nothing left");
        assert!(waits.is_empty());
    }

    #[test]
    fn a_departed_group_answers_its_waits_only() {
        let waits = Waits::default();
        let key = LockKey::new("k").unwrap();
        let (_, mut here) = waits.register(1, "a", &key);
        let (_, mut twice) = waits.register(1, "b", &key);
        let (_, mut other) = waits.register(2, "a", &key);
        let moved = ApiError::new(crate::error::ErrorCode::Unavailable, "moved");
        waits.fail_group(1, &moved);
        assert_eq!((here.try_recv().unwrap(), twice.try_recv().unwrap()), (Err(moved.clone()), Err(moved)));
        assert!(other.try_recv().is_err(), "another group's wait goes on");
        waits.on_effects(2, &[Effect::WaitEnded { name: "a".into(), key, reason: EndReason::TimedOut }]);
        assert!(other.try_recv().unwrap().is_err());
        assert!(waits.is_empty());
    }
}
