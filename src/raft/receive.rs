//! The receiving side of Raft traffic: hands each message to its group.
//!
//! Invariants: a message is handed to the group it names, and only to it; a
//! message for a group this node does not host, or one that does not decode,
//! is refused without touching any group; a leadership transfer wakes the
//! group's timers here (see `quiesce`); pings (node liveness) answer at
//! once, with the groups this node leads and those of the pinger's that a
//! committed membership removed it from (it missed being told).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::network::{Ping, Pong};
use super::quiescer::Quiescer;
use super::types::{LogId, NodeId, Snapshot, SnapshotMeta, Vote};
use crate::codec::{decode, encode, ByteBuf};
use crate::peer::Method;
use crate::routing::GroupId;

pub struct RaftPeerService {
    quiescer: Arc<Quiescer>,
    me: NodeId,
    /// How long a leadership transfer keeps a follower's timers on.
    transfer_wake: Duration,
}

fn bad(e: impl std::fmt::Display) -> String {
    format!("undecodable raft message: {e}")
}

fn failed(e: impl std::fmt::Display) -> String {
    format!("raft group failed: {e}")
}

impl RaftPeerService {
    pub fn new(quiescer: Arc<Quiescer>, me: NodeId, transfer_wake: Duration) -> Self {
        Self { quiescer, me, transfer_wake }
    }

    /// Whether `method` is a Raft message (served here).
    pub fn serves(method: Method) -> bool {
        matches!(
            method,
            Method::AppendEntries
                | Method::Vote
                | Method::PreVote
                | Method::Snapshot
                | Method::TransferLeader
                | Method::Ping
        )
    }

    /// Of the groups `ping`'s sender holds, those this node leads under a
    /// committed membership that leaves the sender out and is newer than
    /// the sender's: it was removed and missed being told.
    fn left(&self, ping: &Ping) -> Vec<(GroupId, LogId)> {
        use openraft::async_runtime::WatchReceiver;
        let removed = |&(group, ref theirs): &(GroupId, Option<LogId>)| {
            let raft = self.quiescer.rafts().get(group as usize)?;
            let metrics = raft.metrics();
            let m = metrics.borrow_watched();
            let ours = m.membership_config.log_id().clone()?;
            let committed = m.cluster_committed.as_ref().is_some_and(|c| c.index >= ours.index);
            let without = m.membership_config.membership().get_node(&ping.from).is_none();
            let newer = theirs.as_ref().is_none_or(|t| *t < ours);
            (m.state == openraft::ServerState::Leader && committed && without && newer).then_some((group, ours))
        };
        ping.hosted.iter().filter_map(removed).collect()
    }

    /// Hands one message to the group it names; the encoded reply, or why not.
    pub async fn handle(&self, method: Method, group: u32, body: Bytes) -> Result<Vec<u8>, String> {
        if method == Method::Ping {
            let leads = (0..self.quiescer.rafts().len() as u32).filter(|&g| self.quiescer.leads(g)).collect();
            // An older node's ping has no body: it hears of no departures.
            let left = decode::<Ping>(&body).map(|ping| self.left(&ping)).unwrap_or_default();
            return Ok(encode(&Pong { node: self.me, leads, left }));
        }
        let raft = self
            .quiescer
            .rafts()
            .get(group as usize)
            .cloned()
            .ok_or_else(|| format!("group {group} is not hosted here"))?;
        let reply = match method {
            Method::AppendEntries => encode(&raft.append_entries(decode(&body).map_err(bad)?).await.map_err(failed)?),
            Method::Vote => encode(&raft.vote(decode(&body).map_err(bad)?).await.map_err(failed)?),
            Method::PreVote => encode(&raft.pre_vote(decode(&body).map_err(bad)?).await.map_err(failed)?),
            Method::Snapshot => {
                let (vote, meta, data): (Vote, SnapshotMeta, ByteBuf) = decode(&body).map_err(bad)?;
                let snapshot = Snapshot { meta, snapshot: data.0 };
                encode(&raft.install_full_snapshot(vote, snapshot).await.map_err(failed)?)
            }
            Method::TransferLeader => {
                self.quiescer.wake_follower(group, self.transfer_wake);
                encode(&raft.handle_transfer_leader(decode(&body).map_err(bad)?).await.map_err(failed)?)
            }
            other => return Err(format!("{other:?} is not a raft message")),
        };
        Ok(reply)
    }
}
