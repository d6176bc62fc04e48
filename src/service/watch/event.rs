//! Watch events: what one applied entry changed, one event per change, as
//! every watcher surface (gRPC, REST, the client) shows it.
//!
//! Invariant: derived from the apply's effects alone, in their order, so
//! every replica derives the same events for the same entry. Lease
//! refreshes are not changes a watcher sees; neither is a lock's removal
//! (its last hold or wait ending is).

use serde::{Deserialize, Serialize};

use crate::lock::{Effect, EndReason, LockKey, Mode, Name, Outcome, Value};
use crate::routing::GroupId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Granted,
    Released,
    Expired,
    ForceReleased,
    Queued,
    WaitEnded,
    ValueChanged,
    Downgraded,
}

impl Kind {
    /// The kind's name on every surface.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Granted => "granted",
            Kind::Released => "released",
            Kind::Expired => "expired",
            Kind::ForceReleased => "force_released",
            Kind::Queued => "queued",
            Kind::WaitEnded => "wait_ended",
            Kind::ValueChanged => "value_changed",
            Kind::Downgraded => "downgraded",
        }
    }
}

/// One change of one lock (sent between nodes by a watch relay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: Kind,
    pub group: GroupId,
    /// The log index of the entry that made the change.
    pub index: u64,
    pub name: Name,
    /// The holder's (or waiter's) key.
    pub key: LockKey,
    /// The holder's first fencing token; 0 for a queued or ended wait.
    pub token: u64,
    pub permits: u32,
    pub mode: Mode,
    /// The lease TTL of a grant; 0 for other events.
    pub ttl_ms: u64,
    /// The holder's value (granted, changed, or carried when the hold ended).
    pub value: Option<Value>,
    pub reason: Reason,
}

/// Why: granted by a hand-off or at once; a wait that timed out or was
/// cancelled; `None` for other events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    None,
    Handoff,
    Immediate,
    TimedOut,
    Cancelled,
}

impl Reason {
    /// The reason's name on every surface (empty for `None`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::None => "",
            Reason::Handoff => "handoff",
            Reason::Immediate => "immediate",
            Reason::TimedOut => "timed_out",
            Reason::Cancelled => "cancelled",
        }
    }
}

/// The events of the outcomes of the entry applied at `index`, in order.
pub fn events_of(group: GroupId, index: u64, outcomes: &[Outcome]) -> Vec<Event> {
    let mut events = Vec::new();
    for effect in outcomes.iter().flat_map(|o| &o.effects) {
        if let Some(event) = event_of(group, index, effect) {
            events.push(event);
        }
    }
    events
}

fn event_of(group: GroupId, index: u64, effect: &Effect) -> Option<Event> {
    let at = |kind, name: &Name, key: &LockKey| Event {
        kind,
        group,
        index,
        name: name.clone(),
        key: key.clone(),
        token: 0,
        permits: 0,
        mode: Mode::Exclusive,
        ttl_ms: 0,
        value: None,
        reason: Reason::None,
    };
    Some(match effect {
        Effect::Granted { name, grant, handoff } => Event {
            token: grant.token,
            permits: grant.permits,
            mode: grant.mode,
            ttl_ms: grant.ttl_ms,
            value: grant.value.clone(),
            reason: if *handoff { Reason::Handoff } else { Reason::Immediate },
            ..at(Kind::Granted, name, &grant.key)
        },
        Effect::HoldEnded { name, key, token, permits, mode, reason, value } => {
            let kind = match reason {
                EndReason::Expired => Kind::Expired,
                EndReason::Forced => Kind::ForceReleased,
                _ => Kind::Released,
            };
            Event { token: *token, permits: *permits, mode: *mode, value: value.clone(), ..at(kind, name, key) }
        }
        Effect::Queued { name, key, permits, mode, .. } => {
            Event { permits: *permits, mode: *mode, ..at(Kind::Queued, name, key) }
        }
        Effect::WaitEnded { name, key, reason } => {
            let reason = if *reason == EndReason::TimedOut { Reason::TimedOut } else { Reason::Cancelled };
            Event { reason, ..at(Kind::WaitEnded, name, key) }
        }
        Effect::ValueChanged { name, key, token, value } => {
            Event { token: *token, value: value.clone(), ..at(Kind::ValueChanged, name, key) }
        }
        Effect::Downgraded { name, key, token } => {
            Event { token: *token, permits: 1, mode: Mode::Shared, ..at(Kind::Downgraded, name, key) }
        }
        Effect::Refreshed { .. } | Effect::Idle { .. } | Effect::Removed { .. } => return None,
    })
}

/// A grant of `name` at `index` in group 0, for tests.
#[cfg(test)]
pub fn sample(name: &str, index: u64) -> Event {
    Event {
        kind: Kind::Granted,
        group: 0,
        index,
        name: name.into(),
        key: LockKey::new("k").unwrap(),
        token: index,
        permits: 1,
        mode: Mode::Exclusive,
        ttl_ms: 1000,
        value: None,
        reason: Reason::Immediate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{AcquireCmd, Command, Limits, LockTable};

    fn acquire(key: &str, wait_ms: u64, value: Option<&str>) -> Command {
        Command::Acquire(AcquireCmd {
            name: "a".into(),
            key: LockKey::new(key).unwrap(),
            size: 1,
            permits: 1,
            ttl_ms: 1000,
            wait_ms,
            mode: Mode::Exclusive,
            value: value.map(Value::from),
        })
    }

    #[test]
    fn a_release_that_hands_off_is_two_events_of_one_index() {
        let mut table = LockTable::new(Limits::default());
        table.apply(1, &acquire("k1", 0, Some("v1")));
        table.apply(2, &acquire("k2", 5000, None));
        let release = table.apply(3, &Command::Release { name: "a".into(), key: LockKey::new("k1").unwrap() });
        let events = events_of(7, 3, &[release]);
        let seen: Vec<_> = events.iter().map(|e| (e.kind, e.key.as_str(), e.token, e.index, e.group)).collect();
        assert_eq!(seen, [(Kind::Released, "k1", 1, 3, 7), (Kind::Granted, "k2", 2, 3, 7)]);
        assert_eq!(events[0].value, Some(Value::from("v1")), "an ended hold shows the value it carried");
        assert_eq!(events[1].reason, Reason::Handoff);
    }
}
