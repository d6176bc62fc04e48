//! The gauges loop: once a second, publishes each group's Raft state and
//! table sizes, and the node's sessions, as metrics, and folds the
//! histogram samples recorded meanwhile into their buckets (whether or not
//! anyone scrapes `/metrics`, so they never pile up).
//!
//! Invariants: reads only (metrics watch borrows and short table read
//! locks); a group's table is walked only when it applied something since
//! the last walk (the table changes only by apply), so idle groups with
//! many locks cost nothing; labels are group ids, bounded by `groups`.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use tokio::sync::watch;

use super::sessions::Sessions;
use crate::metrics as m;
use crate::raft::Groups;

const EVERY: Duration = Duration::from_secs(1);

/// Every `EVERY`, publishes the gauges, until `shutdown` turns true.
pub async fn run(groups: Arc<Groups>, sessions: Arc<Sessions>, mut shutdown: watch::Receiver<bool>) {
    let mut leaders: Vec<Option<u64>> = vec![None; groups.count() as usize];
    let mut walked_at: Vec<Option<u64>> = vec![None; groups.count() as usize];
    // Every group's leader-change counter exists from the first scrape (at
    // 0), not from the first change: a cluster that never changed leader
    // still shows the series, so rate() and alerts see a zero.
    for group in 0..groups.count() {
        counter!(m::LEADER_CHANGES, "group" => group.to_string()).increment(0);
    }
    while crate::rounds::next(EVERY, &mut shutdown).await {
        m::upkeep();
        for group in 0..groups.count() {
            let view = groups.view(group);
            let label = group.to_string();
            if leaders[group as usize] != view.leader && view.leader.is_some() {
                if leaders[group as usize].is_some() {
                    counter!(m::LEADER_CHANGES, "group" => label.clone()).increment(1);
                }
                leaders[group as usize] = view.leader;
            }
            gauge!(m::GROUP_IS_LEADER, "group" => label.clone()).set(if view.is_leader { 1.0 } else { 0.0 });
            gauge!(m::GROUP_TERM, "group" => label.clone()).set(view.term as f64);
            gauge!(m::GROUP_COMMIT_INDEX, "group" => label.clone()).set(view.commit_index as f64);
            gauge!(m::GROUP_APPLIED_INDEX, "group" => label.clone()).set(view.applied_index as f64);
            let lag = view.commit_index.saturating_sub(view.applied_index);
            gauge!(m::GROUP_APPLY_LAG, "group" => label.clone()).set(lag as f64);
            if walked_at[group as usize] == Some(view.applied_index) {
                continue;
            }
            walked_at[group as usize] = Some(view.applied_index);
            let (locks, held, waiters) = groups.state(group).read(|t| {
                t.iter().fold((0u64, 0u64, 0u64), |(l, h, w), (_, lock)| {
                    (l + 1, h + u64::from(lock.held()), w + lock.waiters().len() as u64)
                })
            });
            gauge!(m::LOCKS, "group" => label.clone()).set(locks as f64);
            gauge!(m::PERMITS_HELD, "group" => label.clone()).set(held as f64);
            gauge!(m::WAITERS, "group" => label).set(waiters as f64);
        }
        gauge!(m::SESSIONS).set(sessions.len() as f64);
    }
}
