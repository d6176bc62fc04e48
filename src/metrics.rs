//! Every metric shardlock exports: names, units and help, in one place.
//!
//! Invariants: labels are bounded — an API call name, a surface, an error
//! code, a group id (at most `groups`), an end reason; never a lock name or
//! key (the most contended names are served by the admin API instead, see
//! [`Contention`]). The pure lock core emits nothing: the runtime around it
//! records what its effects say. The Prometheus recorder is installed once
//! per process; [`render`] serves `/metrics` and runs the exporter's upkeep.

use std::sync::OnceLock;

use dashmap::DashMap;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

// ---- API ----------------------------------------------------------------
/// Requests by surface (grpc, rest, ldlm, ldlm_rest), call and result code.
pub const API_REQUESTS: &str = "shardlock_api_requests_total";
/// Request latency by surface and call (blocking waits included).
pub const API_DURATION: &str = "shardlock_api_request_duration_seconds";

// ---- locks (recorded on each group's leader) ------------------------------
/// Grants, by kind: `immediate` or `handoff` (a queued waiter served).
pub const GRANTS: &str = "shardlock_grants_total";
/// Ended holds, by reason: `released`, `expired`, `forced`.
pub const HOLDS_ENDED: &str = "shardlock_holds_ended_total";
/// Ended waits that were not granted, by reason: `timed_out`, `cancelled`.
pub const WAITS_ENDED: &str = "shardlock_waits_ended_total";
/// Acquires that had to queue.
pub const QUEUED: &str = "shardlock_queued_total";
/// Time from an acquire's arrival to its grant, on the node the client waits on.
pub const WAIT_DURATION: &str = "shardlock_wait_duration_seconds";
/// Time from grant to end of a hold.
pub const HOLD_DURATION: &str = "shardlock_hold_duration_seconds";
/// Locks, permits held and waiters per group (this node's replica).
pub const LOCKS: &str = "shardlock_locks";
pub const PERMITS_HELD: &str = "shardlock_permits_held";
pub const WAITERS: &str = "shardlock_waiters";
/// Open sessions on this node.
pub const SESSIONS: &str = "shardlock_sessions";

// ---- raft -------------------------------------------------------------------
/// 1 when this node leads the group.
pub const GROUP_IS_LEADER: &str = "shardlock_group_is_leader";
pub const GROUP_TERM: &str = "shardlock_group_term";
pub const GROUP_COMMIT_INDEX: &str = "shardlock_group_commit_index";
pub const GROUP_APPLIED_INDEX: &str = "shardlock_group_applied_index";
/// Committed entries not yet applied here.
pub const GROUP_APPLY_LAG: &str = "shardlock_group_apply_lag";
/// Commands this node proposed (locally, as leader) per group.
pub const PROPOSALS: &str = "shardlock_proposals_total";
/// Times this node saw a group's leader change.
pub const LEADER_CHANGES: &str = "shardlock_leader_changes_total";
/// Groups of this node whose Raft timers are off because they are idle.
pub const GROUPS_QUIESCED: &str = "shardlock_groups_quiesced";

// ---- storage ---------------------------------------------------------------
/// Log writes made durable by one WAL sync.
pub const WAL_SYNC_BATCH: &str = "shardlock_wal_sync_batch_size";
pub const WAL_SYNC_DURATION: &str = "shardlock_wal_sync_duration_seconds";

// ---- peers ------------------------------------------------------------------
/// Messages this node sent to peers, by `method` (append_entries, vote, …).
pub const PEER_MESSAGES: &str = "shardlock_peer_messages_total";

// ---- watch -------------------------------------------------------------------
/// Watch and Observe streams open on this node.
pub const WATCHES: &str = "shardlock_watches";
/// Watch events sent to watchers.
pub const WATCH_EVENTS: &str = "shardlock_watch_events_total";
/// Time from an entry's apply on this node to its events going out to a watcher.
pub const WATCH_DELAY: &str = "shardlock_watch_delay_seconds";
/// Watch streams ended because the history they needed was gone.
pub const WATCH_COMPACTED: &str = "shardlock_watch_compacted_total";

// ---- the write path, stage by stage (see [`Stage`]) ------------------------
/// Time a write spends in each stage, by `stage`.
pub const WRITE_STAGE: &str = "shardlock_write_stage_seconds";

/// Every metric name, for the dashboard test.
pub const ALL: &[&str] = &[
    API_REQUESTS,
    API_DURATION,
    GRANTS,
    HOLDS_ENDED,
    WAITS_ENDED,
    QUEUED,
    WAIT_DURATION,
    HOLD_DURATION,
    LOCKS,
    PERMITS_HELD,
    WAITERS,
    SESSIONS,
    GROUP_IS_LEADER,
    GROUP_TERM,
    GROUP_COMMIT_INDEX,
    GROUP_APPLIED_INDEX,
    GROUP_APPLY_LAG,
    PROPOSALS,
    LEADER_CHANGES,
    GROUPS_QUIESCED,
    WAL_SYNC_BATCH,
    WAL_SYNC_DURATION,
    WRITE_STAGE,
    PEER_MESSAGES,
    WATCHES,
    WATCH_EVENTS,
    WATCH_DELAY,
    WATCH_COMPACTED,
];

/// Buckets of the write stages: they take microseconds to milliseconds.
const STAGE_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

const BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and describes every
/// metric. Returns false if another recorder was installed first.
pub fn install() -> bool {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(WRITE_STAGE.to_owned()), STAGE_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(WATCH_DELAY.to_owned()), STAGE_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .is_some()
}

/// Folds the histogram samples recorded since the last upkeep into their
/// buckets. The exporter keeps every sample (24 bytes each) until then, so
/// a node nobody scrapes must run this itself: at a million writes that was
/// tens of MB per node (loadtest/state.sh, bench/RESULTS.md "State that
/// grows"), growing without bound.
pub fn upkeep() {
    if let Some(handle) = HANDLE.get().and_then(Option::as_ref) {
        handle.run_upkeep();
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    match HANDLE.get().and_then(Option::as_ref) {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

fn describe() {
    describe_counter!(API_REQUESTS, Unit::Count, "API requests by surface, call and result code");
    describe_histogram!(API_DURATION, Unit::Seconds, "API request latency by surface and call");
    describe_counter!(GRANTS, Unit::Count, "grants by kind (immediate, handoff), counted on the group leader");
    describe_counter!(HOLDS_ENDED, Unit::Count, "ended holds by reason (released, expired, forced), on the leader");
    describe_counter!(WAITS_ENDED, Unit::Count, "waits ended without a grant (timed_out, cancelled), on the leader");
    describe_counter!(QUEUED, Unit::Count, "acquires that joined a queue, on the leader");
    describe_histogram!(WAIT_DURATION, Unit::Seconds, "time from an acquire's arrival to its grant");
    describe_histogram!(HOLD_DURATION, Unit::Seconds, "time from grant to the end of a hold, on the leader");
    describe_gauge!(LOCKS, Unit::Count, "locks in the group's table");
    describe_gauge!(PERMITS_HELD, Unit::Count, "permits held in the group");
    describe_gauge!(WAITERS, Unit::Count, "queued waiters in the group");
    describe_gauge!(SESSIONS, Unit::Count, "open sessions on this node");
    describe_gauge!(GROUP_IS_LEADER, Unit::Count, "1 when this node leads the group");
    describe_gauge!(GROUP_TERM, Unit::Count, "the group's current Raft term");
    describe_gauge!(GROUP_COMMIT_INDEX, Unit::Count, "the group's committed log index");
    describe_gauge!(GROUP_APPLIED_INDEX, Unit::Count, "the group's applied log index on this node");
    describe_gauge!(GROUP_APPLY_LAG, Unit::Count, "committed entries not yet applied on this node");
    describe_counter!(PROPOSALS, Unit::Count, "commands proposed through this node's Raft");
    describe_counter!(LEADER_CHANGES, Unit::Count, "leader changes seen by this node");
    describe_gauge!(GROUPS_QUIESCED, Unit::Count, "groups whose raft timers are off because they are idle");
    describe_histogram!(WAL_SYNC_BATCH, Unit::Count, "log writes made durable by one WAL sync");
    describe_histogram!(WAL_SYNC_DURATION, Unit::Seconds, "duration of one WAL sync (fsync)");
    describe_counter!(PEER_MESSAGES, Unit::Count, "messages sent to peers, by method");
    describe_histogram!(WRITE_STAGE, Unit::Seconds, "time a write spends in each stage of the write path, by stage");
    describe_gauge!(WATCHES, Unit::Count, "watch and observe streams open on this node");
    describe_counter!(WATCH_EVENTS, Unit::Count, "watch events sent to watchers");
    describe_histogram!(WATCH_DELAY, Unit::Seconds, "time from an entry's apply to its events going out to a watcher");
    describe_counter!(WATCH_COMPACTED, Unit::Count, "watch streams ended because their history was gone");
    // Shown from the start, so that an alert on them sees 0 rather than nothing.
    metrics::gauge!(WATCHES).set(0.0);
    metrics::counter!(WATCH_COMPACTED).absolute(0);
}

/// The stages of a replicated write, in the order a write meets them.
///
/// - `queue`: a command waits at its group's proposer for the write ahead of it;
/// - `append`: a node encodes entries into a write batch and its log's
///   cache (the WAL syncer writes the batch);
/// - `fsync`: one WAL sync, shared by every append that queued for it;
/// - `replicate`: the leader's AppendEntries round trip to one follower
///   (the follower's append and fsync included);
/// - `commit`: a batch handed to Raft until its entry applies on the leader;
/// - `apply`: one entry (all its commands) applied to a group's table;
/// - `reply`: from the leader's apply until the proposer has the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Queue,
    Append,
    Fsync,
    Replicate,
    Commit,
    Apply,
    Reply,
}

impl Stage {
    pub const ALL: [Stage; 7] =
        [Stage::Queue, Stage::Append, Stage::Fsync, Stage::Replicate, Stage::Commit, Stage::Apply, Stage::Reply];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Append => "append",
            Stage::Fsync => "fsync",
            Stage::Replicate => "replicate",
            Stage::Commit => "commit",
            Stage::Apply => "apply",
            Stage::Reply => "reply",
        }
    }
}

/// Records `took` for `stage` (histogram handles are registered once).
pub fn stage(stage: Stage, took: std::time::Duration) {
    static HANDLES: OnceLock<Vec<metrics::Histogram>> = OnceLock::new();
    let handles = HANDLES
        .get_or_init(|| Stage::ALL.iter().map(|s| metrics::histogram!(WRITE_STAGE, "stage" => s.label())).collect());
    handles[stage as usize].record(took.as_secs_f64());
}

/// Records an acquire's time from arrival to grant (the handle is
/// registered once).
pub fn wait_duration(took: std::time::Duration) {
    static HANDLE: OnceLock<metrics::Histogram> = OnceLock::new();
    HANDLE.get_or_init(|| metrics::histogram!(WAIT_DURATION)).record(took.as_secs_f64());
}

/// Counts one API request by surface, call and result code, and records
/// its latency. The handles are registered once per label set (a bounded
/// set: every label is a `'static` name) and looked up without allocating.
pub fn api_request(surface: &'static str, call: &'static str, code: &'static str, took: std::time::Duration) {
    type Counters = DashMap<(&'static str, &'static str, &'static str), metrics::Counter>;
    type Histograms = DashMap<(&'static str, &'static str), metrics::Histogram>;
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    static HISTOGRAMS: OnceLock<Histograms> = OnceLock::new();
    let counters = COUNTERS.get_or_init(DashMap::new);
    let counter = match counters.get(&(surface, call, code)) {
        Some(c) => c.clone(),
        None => {
            let c = metrics::counter!(API_REQUESTS, "surface" => surface, "call" => call, "code" => code);
            counters.insert((surface, call, code), c.clone());
            c
        }
    };
    counter.increment(1);
    let histograms = HISTOGRAMS.get_or_init(DashMap::new);
    let histogram = match histograms.get(&(surface, call)) {
        Some(h) => h.clone(),
        None => {
            let h = metrics::histogram!(API_DURATION, "surface" => surface, "call" => call);
            histograms.insert((surface, call), h.clone());
            h
        }
    };
    histogram.record(took.as_secs_f64());
}

/// How often locks had to queue, per name: the most contended names, for
/// the admin API (lock names never become metric labels). Bounded: past
/// `capacity` names, the least contended half is forgotten.
pub struct Contention {
    counts: DashMap<String, u64>,
    capacity: usize,
}

impl Contention {
    pub fn new(capacity: usize) -> Self {
        Self { counts: DashMap::new(), capacity: capacity.max(2) }
    }

    pub fn record(&self, name: &str) {
        if let Some(mut n) = self.counts.get_mut(name) {
            *n += 1;
            return;
        }
        if self.counts.len() >= self.capacity {
            self.prune();
        }
        self.counts.insert(name.to_owned(), 1);
    }

    fn prune(&self) {
        let mut all: Vec<u64> = self.counts.iter().map(|e| *e.value()).collect();
        all.sort_unstable();
        let cut = all[(all.len() - 1) / 2];
        self.counts.retain(|_, n| *n > cut);
    }

    /// The `n` most contended names, most first.
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self.counts.iter().map(|e| (e.key().clone(), *e.value())).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|n| n.starts_with("shardlock_")));
    }

    #[test]
    fn contention_keeps_the_top_names_within_capacity() {
        let c = Contention::new(4);
        for (name, times) in [("a", 5), ("b", 3), ("c", 1), ("d", 1), ("e", 2)] {
            for _ in 0..times {
                c.record(name);
            }
        }
        assert!(c.counts.len() <= 4);
        assert_eq!(c.top(2), vec![("a".to_owned(), 5), ("b".to_owned(), 3)]);
    }
}
