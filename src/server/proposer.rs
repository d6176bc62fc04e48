//! The write path of the lock service: proposing, forwarding and retrying.
//!
//! Every write of the lock service, the wait guard and the forward service
//! goes through the [`Proposer`], and so does the routing of reads and
//! membership changes:
//! - on a group's leader, the commands that arrive while the group's
//!   previous write is in flight wait for it, then ride together in one
//!   entry. "First caller leads": a command that finds nothing in flight is
//!   proposed at once, on its caller's task, with no added hop; a batch's
//!   outcomes are handed to its callers from the leader's apply;
//! - a lone command of a group that had company in the last
//!   [`CONTENDED_FOR`] (a batch of two or more, or commands queued behind a
//!   flight) yields to the runtime up to [`LINGER_YIELDS`] times, leaving as
//!   soon as a second command queues: a hot lock's hand-off (the holder's
//!   release and the last holder's re-acquire, which arrive microseconds
//!   apart) then takes one entry, not two. No timer: a yield costs
//!   microseconds, and a group that never had company (one client) never
//!   lingers. Measured: `bench/write_path --hot`, 16 clients, 1.05 entries
//!   per hand-off (was 1.6) and +20% hand-offs/s; in `loadtest/compare.sh`
//!   fsyncs per hand-off fell from 4.8 to 3.45, hand-offs/s stayed put (the
//!   round trip per hand-off, not the entry count, bounds it there);
//! - on another node, a request goes one hop to the leader this node knows
//!   of (a forwarded request is served by the receiver's local Raft only);
//! - while a group elects a leader, retryable failures are retried for up to
//!   `retry_window`.
//!
//! Invariants: at most one batch per group is in flight from this node;
//! every queued command is answered exactly once (its outcome, or why it was
//! not applied); a batch holds at most [`MAX_BATCH`] commands; the queue's
//! mutex is never held across an `.await` nor while answering.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::forward;
use crate::error::{ApiError, ErrorCode};
use crate::lock::{Command, Outcome};
use crate::metrics::Stage;
use crate::raft::{Committed, GroupError, Groups, NodeId};
use crate::routing::GroupId;

/// Most commands in one entry.
pub const MAX_BATCH: usize = 512;

/// How long after a group last had company a lone command lingers.
const CONTENDED_FOR: Duration = Duration::from_millis(10);

/// How many times a lone command of a recently contended group yields to
/// the runtime, waiting for a companion, before it is proposed alone.
const LINGER_YIELDS: usize = 8;

/// A command applied at `index`, and its outcome.
#[derive(Clone, Debug)]
pub struct Applied {
    pub index: u64,
    pub outcome: Outcome,
}

/// What a queued command's caller gets: the answer, and when the leader
/// applied it (for the `reply` stage).
type Answer = (Result<Applied, ApiError>, Option<Instant>);

struct Waiting {
    cmd: Command,
    since: Instant,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    /// A batch of this group is in Raft's hands (proposed, not yet settled).
    in_flight: bool,
    waiting: Vec<Waiting>,
    /// When the group last had company: a batch of more than one command,
    /// or commands queued behind a batch in flight.
    contended_at: Option<Instant>,
}

impl Queue {
    fn recently_contended(&self, now: Instant) -> bool {
        self.contended_at.is_some_and(|at| now.saturating_duration_since(at) < CONTENDED_FOR)
    }
}

pub struct Proposer {
    groups: Arc<Groups>,
    queues: Vec<Mutex<Queue>>,
    retry_window: Duration,
    /// `shardlock_proposals_total` per group, registered once.
    proposals: Vec<metrics::Counter>,
}

fn unavailable(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("{why}: retry"))
}

/// The API error for a write or read that did not happen on this node.
pub fn refused(group: GroupId, err: GroupError) -> ApiError {
    match err {
        GroupError::NotLeader(leader) => ApiError::not_leader(leader.map(|n| n.client_addr)),
        GroupError::NoQuorum(q) => unavailable(format!("group {group} has no quorum ({q})")),
        GroupError::Stopped(why) => unavailable(format!("raft group {group} stopped ({why})")),
    }
}

impl Proposer {
    pub fn new(groups: Arc<Groups>, retry_window: Duration) -> Arc<Self> {
        let count = groups.count();
        let queues = (0..count).map(|_| Mutex::default()).collect();
        let proposals = (0..count)
            .map(|group| metrics::counter!(crate::metrics::PROPOSALS, "group" => group.to_string()))
            .collect();
        Arc::new(Self { groups, queues, retry_window, proposals })
    }

    fn queue(&self, group: GroupId) -> MutexGuard<'_, Queue> {
        self.queues[group as usize].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a request keeps retrying while its group has no leader.
    pub fn retry_window(&self) -> Duration {
        self.retry_window
    }

    /// Proposes `cmd` in `group` wherever its leader is; also says whether
    /// it took more than one attempt (a failed attempt may still have been
    /// applied, so a retry can meet the effect of its own first try).
    pub async fn propose(self: &Arc<Self>, group: GroupId, cmd: &Command) -> (Result<Applied, ApiError>, bool) {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let local = || self.propose_local(group, cmd.clone());
        let router = self.groups.router();
        let remote = |leader| forward::propose(router, leader, group, cmd);
        let result = self.on_leader_counted(group, local, remote, &attempts).await;
        (result, attempts.load(std::sync::atomic::Ordering::Relaxed) > 1)
    }

    /// One attempt through this node's Raft: `NotLeader` unless it leads.
    pub async fn propose_local(self: &Arc<Self>, group: GroupId, cmd: Command) -> Result<Applied, ApiError> {
        if group >= self.groups.count() {
            return Err(ApiError::new(ErrorCode::InvalidArgument, format!("group {group} does not exist")));
        }
        self.proposals[group as usize].increment(1);
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut queue = self.queue(group);
            queue.waiting.push(Waiting { cmd, since: Instant::now(), answer: tx });
            !std::mem::replace(&mut queue.in_flight, true)
        };
        if lead {
            self.submit_next(group).await;
        }
        let (answer, applied_at) = rx.await.unwrap_or_else(|_| (Err(unavailable("the proposal was dropped")), None));
        if let Some(at) = applied_at {
            crate::metrics::stage(Stage::Reply, at.elapsed());
        }
        answer
    }

    /// Proposes what waits in `group`'s queue as one batch, or marks the
    /// group idle when nothing does. The caller holds the group's turn.
    async fn submit_next(self: &Arc<Self>, group: GroupId) {
        let mut yields = 0;
        let batch = loop {
            match self.take_batch(group, yields < LINGER_YIELDS) {
                Some(batch) if batch.is_empty() => return,
                Some(batch) => break batch,
                None => {
                    yields += 1;
                    tokio::task::yield_now().await;
                }
            }
        };
        let now = Instant::now();
        let (commands, answers): (Vec<Command>, Vec<_>) = batch
            .into_iter()
            .map(|w| {
                crate::metrics::stage(Stage::Queue, now.saturating_duration_since(w.since));
                (w.cmd, w.answer)
            })
            .unzip();
        let this = self.clone();
        self.groups.submit(group, commands, move |result| this.settle(group, answers, result)).await;
    }

    /// Takes `group`'s next batch: empty when nothing waits (the group is
    /// then idle), `None` when a lone command should linger a moment first.
    fn take_batch(&self, group: GroupId, may_linger: bool) -> Option<Vec<Waiting>> {
        let now = Instant::now();
        let mut queue = self.queue(group);
        let n = queue.waiting.len().min(MAX_BATCH);
        if n == 0 {
            queue.in_flight = false;
        } else if n == 1 && may_linger && queue.recently_contended(now) {
            return None;
        } else if n > 1 {
            queue.contended_at = Some(now);
        }
        Some(queue.waiting.drain(..n).collect())
    }

    /// Answers a batch's callers, then hands the group's turn on: to a task
    /// that proposes what queued meanwhile, or back to idle.
    fn settle(
        self: Arc<Self>,
        group: GroupId,
        answers: Vec<oneshot::Sender<Answer>>,
        result: Result<Committed, GroupError>,
    ) {
        match result {
            Ok(Committed { index, outcomes, applied_at }) if outcomes.len() == answers.len() => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send((Ok(Applied { index, outcome }), applied_at));
                }
            }
            Ok(committed) => {
                let why = format!("{} outcomes for {} commands", committed.outcomes.len(), answers.len());
                let err = ApiError::new(ErrorCode::Internal, format!("internal error: {why}; see the server log"));
                tracing::error!(group, %why, "a batch's outcomes do not match its commands");
                answers.into_iter().for_each(|a| drop(a.send((Err(err.clone()), None))));
            }
            Err(err) => {
                let err = refused(group, err);
                answers.into_iter().for_each(|a| drop(a.send((Err(err.clone()), None))));
            }
        }
        let more = {
            let mut queue = self.queue(group);
            queue.in_flight = !queue.waiting.is_empty();
            if queue.in_flight {
                queue.contended_at = Some(Instant::now());
            }
            queue.in_flight
        };
        if more {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn(async move { self.submit_next(group).await })),
                Err(_) => self.fail_waiting(group),
            }
        }
    }

    /// Answers everything queued in `group` with a retryable error (no
    /// runtime is left to propose it: the node is stopping).
    fn fail_waiting(&self, group: GroupId) {
        let waiting = {
            let mut queue = self.queue(group);
            queue.in_flight = false;
            std::mem::take(&mut queue.waiting)
        };
        for w in waiting {
            let _ = w.answer.send((Err(unavailable("the node is stopping")), None));
        }
    }

    /// Runs `local` on this node; when it answers `NotLeader`, runs `remote`
    /// against the leader this node knows of (one hop); retries retryable
    /// failures while the group elects a leader, for up to `retry_window`.
    pub async fn on_leader<T, L, LF, R, RF>(&self, group: GroupId, local: L, remote: R) -> Result<T, ApiError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Result<T, ApiError>>,
        R: Fn(NodeId) -> RF,
        RF: Future<Output = Result<T, ApiError>>,
    {
        self.on_leader_counted(group, local, remote, &std::sync::atomic::AtomicU32::new(0)).await
    }

    /// `on_leader`, counting its attempts (a forwarded one counts once).
    async fn on_leader_counted<T, L, LF, R, RF>(
        &self,
        group: GroupId,
        local: L,
        remote: R,
        attempts: &std::sync::atomic::AtomicU32,
    ) -> Result<T, ApiError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Result<T, ApiError>>,
        R: Fn(NodeId) -> RF,
        RF: Future<Output = Result<T, ApiError>>,
    {
        let deadline = Instant::now() + self.retry_window;
        let mut backoff = Duration::from_millis(20);
        loop {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let attempt = if self.groups.hosts(group) {
                match local().await {
                    Err(err) if err.code == ErrorCode::NotLeader => match self.groups.view(group).leader {
                        Some(leader) if leader != self.groups.me() => remote(leader).await,
                        _ => Err(err),
                    },
                    other => other,
                }
            } else {
                // No replica here: straight to where the group lives.
                match self.groups.route(group) {
                    Some(node) => remote(node).await,
                    None => Err(unavailable(format!("no live node of group {group} is known; retry"))),
                }
            };
            match attempt {
                Err(err) if err.row().retryable && Instant::now() < deadline => {
                    self.await_leader(group, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    async fn await_leader(&self, group: GroupId, pause: Duration) {
        match self.groups.view(group).leader {
            None if self.groups.hosts(group) => {
                self.groups.wait_leader(group, pause.max(Duration::from_millis(100))).await;
            }
            // A leader known, or a group seen only through peers' pings.
            _ => tokio::time::sleep(pause).await,
        }
    }
}
