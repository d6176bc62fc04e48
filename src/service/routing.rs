//! Routing to a group's leader, and retries while a group elects one.
//!
//! Any node accepts any request: a node that leads the request's group
//! serves it through its own Raft (the [`Batcher`] for writes); one that
//! does not sends it one hop to the leader it knows of, over the peer
//! connection (`forward::call`); one that holds no replica of the group
//! sends it to where the group lives (`Cluster::route`).
//!
//! Invariants: a forwarded request is served by the receiver's own Raft
//! only, never forwarded again, so a stale view of the leader costs at most
//! one extra hop and can never loop; retryable failures are retried, with
//! backoff, for up to `retry_window` (while the group elects a leader).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batcher::{Applied, Batcher};
use super::errors::unavailable;
use super::forward::call;
use crate::error::{ApiError, ErrorCode};
use crate::lock::Command;
use crate::raft::{Cluster, NodeId};
use crate::routing::GroupId;

pub struct Routing {
    cluster: Arc<Cluster>,
    batcher: Arc<Batcher>,
    retry_window: Duration,
}

impl Routing {
    pub fn new(cluster: Arc<Cluster>, retry_window: Duration) -> Self {
        let batcher = Batcher::new(cluster.groups().clone());
        Self { cluster, batcher, retry_window }
    }

    pub fn batcher(&self) -> &Arc<Batcher> {
        &self.batcher
    }

    /// How long a request keeps retrying while its group has no leader.
    pub fn retry_window(&self) -> Duration {
        self.retry_window
    }

    /// Proposes `cmd` in `group` wherever its leader is; `Applied::retried`
    /// says whether it took more than one attempt.
    pub async fn propose(&self, group: GroupId, cmd: &Command) -> Result<Applied, ApiError> {
        let attempts = AtomicU32::new(0);
        let local = || self.batcher.propose_local(group, cmd.clone());
        let remote = |leader| call::propose(self.cluster.router(), leader, group, cmd);
        let mut applied = self.attempt(group, local, remote, &attempts).await?;
        applied.retried = attempts.load(Ordering::Relaxed) > 1;
        Ok(applied)
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
        self.attempt(group, local, remote, &AtomicU32::new(0)).await
    }

    /// `on_leader`, counting its attempts (a forwarded one counts once).
    async fn attempt<T, L, LF, R, RF>(
        &self,
        group: GroupId,
        local: L,
        remote: R,
        attempts: &AtomicU32,
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
            attempts.fetch_add(1, Ordering::Relaxed);
            let attempt = if self.cluster.hosts(group) {
                match local().await {
                    Err(err) if err.code == ErrorCode::NotLeader => match self.cluster.groups().view(group).leader {
                        Some(leader) if leader != self.cluster.me() => remote(leader).await,
                        _ => Err(err),
                    },
                    other => other,
                }
            } else {
                // No replica here: straight to where the group lives.
                match self.cluster.route(group) {
                    Some(node) => remote(node).await,
                    None => Err(unavailable(format!("no live node of group {group} is known"))),
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
        let groups = self.cluster.groups();
        match groups.view(group).leader {
            None if self.cluster.hosts(group) => {
                groups.wait_leader(group, pause.max(Duration::from_millis(100))).await;
            }
            // A leader known, or a group seen only through peers' pings.
            _ => tokio::time::sleep(pause).await,
        }
    }
}
