//! The runtime side of apply: performs the effects the pure table returns.
//!
//! Invariant: runs inside each group's apply, synchronously and without
//! blocking: it only answers local waiters, records deadlines and appends
//! the entry's watch events to the group's history.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics::{Counter, Histogram};

use super::waits::Waits;
use super::watch::{event::events_of, History};
use crate::lock::{Effect, EndReason, LockTable, Outcome};
use crate::metrics::{Contention, GRANTS, HOLDS_ENDED, HOLD_DURATION, QUEUED, WAITS_ENDED};
use crate::raft::ApplyObserver;
use crate::routing::GroupId;
use crate::upkeep::keeper::Keeper;

pub struct EffectSink {
    pub waits: Arc<Waits>,
    pub keeper: Arc<Keeper>,
    pub contention: Arc<Contention>,
    pub history: Arc<History>,
}

const REASONS: [EndReason; 5] =
    [EndReason::Released, EndReason::Expired, EndReason::Forced, EndReason::TimedOut, EndReason::Cancelled];

fn reason_label(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Released => "released",
        EndReason::Expired => "expired",
        EndReason::Forced => "forced",
        EndReason::TimedOut => "timed_out",
        EndReason::Cancelled => "cancelled",
    }
}

/// The apply path's metric handles, registered once: a lookup by name and
/// labels per effect cost a hash of both on every command.
struct Counted {
    /// Immediate, then hand-off.
    grants: [Counter; 2],
    /// By [`REASONS`].
    holds_ended: [Counter; 5],
    waits_ended: [Counter; 5],
    queued: Counter,
    hold_duration: Histogram,
}

impl Counted {
    fn get() -> &'static Counted {
        static COUNTED: OnceLock<Counted> = OnceLock::new();
        COUNTED.get_or_init(|| {
            let by_reason = |name| REASONS.map(|r| metrics::counter!(name, "reason" => reason_label(r)));
            Counted {
                grants: ["immediate", "handoff"].map(|kind| metrics::counter!(GRANTS, "kind" => kind)),
                holds_ended: by_reason(HOLDS_ENDED),
                waits_ended: by_reason(WAITS_ENDED),
                queued: metrics::counter!(QUEUED),
                hold_duration: metrics::histogram!(HOLD_DURATION),
            }
        })
    }
}

/// `reason`'s place in [`REASONS`] (a new reason fails to compile here).
fn slot(reason: EndReason) -> usize {
    match reason {
        EndReason::Released => 0,
        EndReason::Expired => 1,
        EndReason::Forced => 2,
        EndReason::TimedOut => 3,
        EndReason::Cancelled => 4,
    }
}

fn by_reason(counters: &[Counter; 5], reason: EndReason) -> &Counter {
    &counters[slot(reason)]
}

impl EffectSink {
    /// Counts what happened, once per cluster: only the group leader counts.
    fn count(&self, effects: &[Effect], held: &[std::time::Duration]) {
        let counted = Counted::get();
        for effect in effects {
            match effect {
                Effect::Granted { handoff, .. } => counted.grants[usize::from(*handoff)].increment(1),
                Effect::HoldEnded { reason, .. } => by_reason(&counted.holds_ended, *reason).increment(1),
                Effect::WaitEnded { reason, .. } => by_reason(&counted.waits_ended, *reason).increment(1),
                Effect::Queued { .. } => counted.queued.increment(1),
                _ => {}
            }
        }
        for d in held {
            counted.hold_duration.record(d.as_secs_f64());
        }
    }
}

impl ApplyObserver for EffectSink {
    fn applied(&self, group: GroupId, index: u64, outcomes: &[Outcome]) {
        for outcome in outcomes {
            self.apply_effects(group, outcome);
        }
        self.history.record(group, index, events_of(group, index, outcomes));
    }

    fn restored(&self, group: GroupId, index: u64, table: &LockTable) {
        self.keeper.restore(group, table, Instant::now());
        self.history.reset(group, index);
    }

    /// This node will not apply the group's entries any more: its waiters
    /// retry (with their keys) on a node that will, and its watchers resume
    /// there (their streams end).
    fn departed(&self, group: GroupId) {
        self.waits.fail_group(group, &super::errors::replica_left());
        self.history.close(group);
    }
}

impl EffectSink {
    fn apply_effects(&self, group: GroupId, outcome: &Outcome) {
        if outcome.effects.is_empty() {
            return;
        }
        let held = self.keeper.on_effects(group, &outcome.effects, Instant::now());
        self.waits.on_effects(group, &outcome.effects);
        if self.keeper.is_leader(group) {
            self.count(&outcome.effects, &held);
        }
        // Every node applies every entry, so each sees the whole contention.
        for effect in &outcome.effects {
            if let Effect::Queued { name, .. } = effect {
                self.contention.record(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_counts_under_its_own_label() {
        for (i, reason) in REASONS.iter().enumerate() {
            assert_eq!(slot(*reason), i, "{reason:?}");
        }
    }
}
