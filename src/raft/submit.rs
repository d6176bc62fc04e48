//! Writes and linearizable reads of one group, in shardlock's terms.
//!
//! The server proposes batches of lock commands and reads through these two
//! calls only, so openraft's types and errors stay in `src/raft`.
//!
//! Invariants: `submit`'s callback runs exactly once, with the outcome of
//! every command of the batch, in order, or with the reason none applied
//! here; it runs where openraft settles the write (the leader's apply, or
//! RaftCore), so it must not block. A leader whose lease lapsed while its
//! group was quiet confirms itself with a ReadIndex round before it writes.

use std::time::Instant;

use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::{ClientWriteResult, ReadPolicy};

use super::completion::Completion;
use super::proposal::Proposal;
use super::types::{NodeInfo, TypeConfig};
use super::Groups;
use crate::lock::{Command, Outcome};
use crate::routing::GroupId;

/// A batch that applied on the leader.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The log index of its entry.
    pub index: u64,
    /// One outcome per command, in batch order.
    pub outcomes: Vec<Outcome>,
    /// When the leader applied it.
    pub applied_at: Option<Instant>,
}

/// Why a write or a read did not happen on this node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("this node does not lead the group")]
    NotLeader(Option<NodeInfo>),
    #[error("the group has no quorum ({0})")]
    NoQuorum(String),
    #[error("the raft group stopped ({0})")]
    Stopped(String),
}

fn written(result: Option<ClientWriteResult<TypeConfig>>) -> Result<Committed, GroupError> {
    match result {
        Some(Ok(resp)) => {
            let (index, data) = (resp.log_id.index, resp.data);
            Ok(Committed { index, outcomes: data.outcomes, applied_at: data.applied_at })
        }
        Some(Err(ClientWriteError::ForwardToLeader(f))) | Some(Err(ClientWriteError::LogEntryDiscarded(f))) => {
            Err(GroupError::NotLeader(f.leader_node))
        }
        Some(Err(other)) => Err(GroupError::Stopped(other.to_string())),
        None => Err(GroupError::Stopped("the write was dropped: the node is shutting down".into())),
    }
}

impl Groups {
    /// Proposes `commands` as one entry of `group`; `done` gets the result.
    pub async fn submit(
        &self,
        group: GroupId,
        commands: Vec<Command>,
        done: impl FnOnce(Result<Committed, GroupError>) + Send + 'static,
    ) {
        // Made first: if this future is dropped at an await below, or openraft
        // fails fatally, the completion is dropped unanswered and `done` runs.
        let completion = Completion::new(move |result| done(written(result)));
        self.wake_to_write(group).await;
        let _ = self.raft(group).client_write_ff(Proposal::new(commands), Some(completion)).await;
    }

    /// Marks `group` active; if this node leads it and it was quiet, renews
    /// the leader's lapsed lease with one ReadIndex round, without which
    /// openraft refuses writes and membership changes.
    pub(super) async fn wake_to_write(&self, group: GroupId) {
        if self.quiescer().touch(group) {
            let _ = self.raft(group).ensure_linearizable(ReadPolicy::ReadIndex).await;
        }
    }

    /// Confirms this node leads `group` (a ReadIndex round) and waits until
    /// it applied everything committed before; returns that read index.
    pub async fn read_index(&self, group: GroupId) -> Result<u64, GroupError> {
        match self.raft(group).ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => {
                self.quiescer().touch(group);
                Ok(read_log_id.index())
            }
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(GroupError::NotLeader(f.leader_node))
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(GroupError::NoQuorum(q.to_string()))
            }
            Err(RaftError::Fatal(fatal)) => Err(GroupError::Stopped(fatal.to_string())),
        }
    }
}
