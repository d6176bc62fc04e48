//! The runtime side of apply: performs the effects the pure table returns.
//!
//! Invariant: runs inside each group's apply, synchronously and without
//! blocking: it only answers local waiters and records deadlines.

use std::sync::Arc;
use std::time::Instant;

use super::keeper::Keeper;
use super::waits::Waits;
use crate::lock::{LockTable, Outcome};
use crate::raft::ApplyObserver;
use crate::routing::GroupId;

pub struct EffectSink {
    pub waits: Arc<Waits>,
    pub keeper: Arc<Keeper>,
}

impl ApplyObserver for EffectSink {
    fn applied(&self, group: GroupId, _index: u64, outcome: &Outcome) {
        if outcome.effects.is_empty() {
            return;
        }
        self.keeper.on_effects(group, &outcome.effects, Instant::now());
        self.waits.on_effects(group, &outcome.effects);
    }

    fn restored(&self, group: GroupId, table: &LockTable) {
        self.keeper.restore(group, table, Instant::now());
    }
}
