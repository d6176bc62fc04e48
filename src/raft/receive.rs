//! The receiving side of Raft traffic: hands each message to its group.
//!
//! Invariants: a message is handed to the group it names, and only to it; a
//! message for a group this node does not host, or one that does not decode,
//! is refused without touching any group; a leadership transfer wakes the
//! group's timers here (see `quiesce`); pings (node liveness) answer at
//! once, with the groups this node leads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::quiescer::Quiescer;
use super::types::{NodeId, Snapshot, SnapshotMeta, Vote};
use crate::codec::{decode, encode, ByteBuf};
use crate::peer::Method;

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

    /// Hands one message to the group it names; the encoded reply, or why not.
    pub async fn handle(&self, method: Method, group: u32, body: Bytes) -> Result<Vec<u8>, String> {
        if method == Method::Ping {
            let leads = (0..self.quiescer.rafts().len() as u32).filter(|&g| self.quiescer.leads(g)).collect();
            return Ok(encode(&super::network::Pong { node: self.me, leads }));
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
