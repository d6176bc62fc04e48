//! The runtime side of apply: performs the effects the pure table returns.
//!
//! Invariant: runs inside each group's apply, synchronously and without
//! blocking: it only answers local waiters, records deadlines and appends
//! the entry's watch events to the group's history.

use std::sync::Arc;
use std::time::Instant;

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

fn reason_label(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Released => "released",
        EndReason::Expired => "expired",
        EndReason::Forced => "forced",
        EndReason::TimedOut => "timed_out",
        EndReason::Cancelled => "cancelled",
    }
}

impl EffectSink {
    /// Counts what happened, once per cluster: only the group leader counts.
    fn count(&self, effects: &[Effect], held: &[std::time::Duration]) {
        for effect in effects {
            match effect {
                Effect::Granted { handoff, .. } => {
                    let kind = if *handoff { "handoff" } else { "immediate" };
                    metrics::counter!(GRANTS, "kind" => kind).increment(1);
                }
                Effect::HoldEnded { reason, .. } => {
                    metrics::counter!(HOLDS_ENDED, "reason" => reason_label(*reason)).increment(1)
                }
                Effect::WaitEnded { reason, .. } => {
                    metrics::counter!(WAITS_ENDED, "reason" => reason_label(*reason)).increment(1)
                }
                Effect::Queued { .. } => metrics::counter!(QUEUED).increment(1),
                _ => {}
            }
        }
        for d in held {
            metrics::histogram!(HOLD_DURATION).record(d.as_secs_f64());
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
