//! The batcher: a group leader's commands, gathered into entries.
//!
//! Every command this node proposes through its own Raft goes through the
//! [`Batcher`] (`routing` sends the others to their leader):
//! - on a group's leader, the commands that arrive while [`FLIGHTS`] of the
//!   group's batches are in flight wait for one to settle, then ride
//!   together in one entry. A command that finds a flight free is
//!   proposed at once, by a task spawned for it (not on its caller's task,
//!   which a slow or departed client can stall or drop); a batch's
//!   outcomes are handed to its callers from the leader's apply. Several
//!   flights, not one: while one batch is being made durable the next ones
//!   form and are appended, so the WAL syncer always has the next write in
//!   hand (measured in `FLIGHTS`'s doc);
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
//!
//! Invariants: at most [`FLIGHTS`] batches per group are in flight from
//! this node; a flight taken is given back exactly once, when its batch
//! settles or when its task ends without handing a batch to Raft
//! ([`Held`]); a group's batches reach its Raft
//! in the order they were taken from its queue (a group's *turn*, an async
//! FIFO mutex, is held from taking a batch until Raft has it), so the
//! commands of one connection's pipeline are applied in the order they
//! were sent; every queued command is answered exactly once (its outcome,
//! or why it was not applied); a batch holds at most [`MAX_BATCH`]
//! commands; the queue's mutex is never held across an `.await` nor while
//! answering.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Mutex as Turn};

use super::errors::{internal, refused, unavailable};
use crate::error::{ApiError, ErrorCode};
use crate::lock::{Command, Outcome};
use crate::metrics::Stage;
use crate::raft::{Committed, GroupError, Groups};
use crate::routing::GroupId;

/// Most batches of one group in Raft's hands at once: one being synced,
/// one queued at the WAL syncer behind it, one forming. Measured on one
/// node, RESP (`loadtest/ab.sh`; bench/RESULTS.md, "Batches in flight"):
/// with 1 group, 3 flights against 1 took 16 clients from 8.6k to 10.9k
/// cycles/s and 64 from 20.9k to 23.0k, with fewer fsyncs and less CPU per
/// cycle; 4 and 6 flights did no better than 3. With 4 groups, 64 clients
/// gained 17% and 256 lost 6%: twelve entries in flight are smaller.
pub const FLIGHTS: usize = 3;

/// Most commands in one entry.
pub const MAX_BATCH: usize = 512;

/// How long after a group last had company a lone command lingers.
const CONTENDED_FOR: Duration = Duration::from_millis(10);

/// How many times a lone command of a recently contended group yields to
/// the runtime, waiting for a companion, before it is proposed alone.
const LINGER_YIELDS: usize = 8;

/// A command applied at `index`, and its outcome: what a write's caller
/// gets back, from the leader's apply to the surface. Forwarded answers
/// travel as `(index, outcome)`; the other fields stay on the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
    pub outcome: Outcome,
    /// When the leader applied it, for the `reply` stage (on the leader).
    #[serde(skip)]
    pub applied_at: Option<Instant>,
    /// It took more than one attempt: a failed attempt may still have been
    /// applied, so this outcome can meet the effect of the first one.
    #[serde(skip)]
    pub retried: bool,
}

type Answer = Result<Applied, ApiError>;

struct Waiting {
    cmd: Command,
    since: Instant,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    /// Batches of this group in Raft's hands (proposed, not yet settled),
    /// or about to be: at most [`FLIGHTS`].
    in_flight: usize,
    waiting: Vec<Waiting>,
    /// When the group last had company: a batch of more than one command,
    /// or commands queued behind a batch in flight.
    contended_at: Option<Instant>,
}

impl Queue {
    fn recently_contended(&self, now: Instant) -> bool {
        self.contended_at.is_some_and(|at| now.saturating_duration_since(at) < CONTENDED_FOR)
    }

    /// Takes a flight if one is free; true if it did.
    fn take_flight(&mut self) -> bool {
        let free = self.in_flight < FLIGHTS;
        self.in_flight += usize::from(free);
        free
    }
}

/// A flight held by a task that has not handed a batch to Raft yet. When
/// the task ends without doing so (nothing was left to propose, or the
/// runtime dropped it while stopping), dropping this hands the flight on,
/// so no flight is lost and no queued command is stranded.
struct Held {
    batcher: Arc<Batcher>,
    group: GroupId,
    armed: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.armed {
            self.batcher.clone().hand_on(self.group);
        }
    }
}

pub struct Batcher {
    groups: Arc<Groups>,
    queues: Vec<Mutex<Queue>>,
    /// Each group's turn to take a batch and hand it to Raft.
    turns: Vec<Turn<()>>,
    /// `shardlock_proposals_total` per group, registered once.
    proposals: Vec<metrics::Counter>,
}

impl Batcher {
    pub fn new(groups: Arc<Groups>) -> Arc<Self> {
        let count = groups.count();
        let queues = (0..count).map(|_| Mutex::default()).collect();
        let turns = (0..count).map(|_| Turn::new(())).collect();
        let proposals = (0..count)
            .map(|group| metrics::counter!(crate::metrics::PROPOSALS, "group" => group.to_string()))
            .collect();
        Arc::new(Self { groups, queues, turns, proposals })
    }

    fn queue(&self, group: GroupId) -> MutexGuard<'_, Queue> {
        self.queues[group as usize].lock().unwrap_or_else(|p| p.into_inner())
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
            queue.take_flight()
        };
        if lead {
            self.clone().start(group);
        }
        let answer = rx.await.unwrap_or_else(|_| Err(unavailable("the proposal was dropped")));
        if let Some(at) = answer.as_ref().ok().and_then(|a| a.applied_at) {
            crate::metrics::stage(Stage::Reply, at.elapsed());
        }
        answer
    }

    /// Starts a task that proposes `group`'s next batch with the flight the
    /// caller took. A task of its own, never the caller's: a caller is not
    /// always polled (a RESP connection stops polling its commands while a
    /// slow client leaves a reply unread) and may be dropped (its client
    /// went away), and either would hold up the group's turn, or fail a
    /// batch that carries other clients' commands.
    fn start(self: Arc<Self>, group: GroupId) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(async move { self.submit_next(group).await })),
            Err(_) => self.fail_waiting(group),
        }
    }

    /// Proposes what waits in `group`'s queue as one batch, or gives the
    /// flight back when nothing does. The caller holds one of the group's
    /// flights, which this takes over.
    async fn submit_next(self: &Arc<Self>, group: GroupId) {
        let mut held = Held { batcher: self.clone(), group, armed: true };
        let _turn = self.turns[group as usize].lock().await;
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
        // From here the batch's completion owns the flight: `settle` hands
        // it on, also when this future is dropped (see `Groups::submit`).
        held.armed = false;
        self.groups.submit(group, commands, move |result| this.settle(group, answers, result)).await;
    }

    /// Takes `group`'s next batch: empty when nothing waits, `None` when a
    /// lone command should linger a moment first.
    fn take_batch(&self, group: GroupId, may_linger: bool) -> Option<Vec<Waiting>> {
        let now = Instant::now();
        let mut queue = self.queue(group);
        let n = queue.waiting.len().min(MAX_BATCH);
        if n == 1 && may_linger && queue.recently_contended(now) {
            return None;
        } else if n > 1 {
            queue.contended_at = Some(now);
        }
        Some(queue.waiting.drain(..n).collect())
    }

    /// Answers a batch's callers, then hands its flight on: to a task that
    /// proposes what queued meanwhile, or back to the group.
    fn settle(
        self: Arc<Self>,
        group: GroupId,
        answers: Vec<oneshot::Sender<Answer>>,
        result: Result<Committed, GroupError>,
    ) {
        match result {
            Ok(Committed { index, outcomes, applied_at }) if outcomes.len() == answers.len() => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(Ok(Applied { index, outcome, applied_at, retried: false }));
                }
            }
            Ok(committed) => {
                let why =
                    format!("group {group}: {} outcomes for {} commands", committed.outcomes.len(), answers.len());
                let err = internal(why);
                answers.into_iter().for_each(|a| drop(a.send(Err(err.clone()))));
            }
            Err(err) => {
                let err = refused(group, err);
                answers.into_iter().for_each(|a| drop(a.send(Err(err.clone()))));
            }
        }
        self.hand_on(group);
    }

    /// Gives back a flight of `group` and, if commands of it queued
    /// meanwhile, takes it again for a task that proposes them.
    fn hand_on(self: Arc<Self>, group: GroupId) {
        let more = {
            let mut queue = self.queue(group);
            queue.in_flight -= 1;
            let more = !queue.waiting.is_empty() && queue.take_flight();
            if more {
                queue.contended_at = Some(Instant::now());
            }
            more
        };
        if more {
            self.start(group);
        }
    }

    /// Gives back the flight taken for `group`'s next batch and answers
    /// everything queued in `group` with a retryable error (no runtime is
    /// left to propose it: the node is stopping).
    fn fail_waiting(&self, group: GroupId) {
        let waiting = {
            let mut queue = self.queue(group);
            queue.in_flight -= 1;
            std::mem::take(&mut queue.waiting)
        };
        for w in waiting {
            let _ = w.answer.send(Err(unavailable("the node is stopping")));
        }
    }
}
