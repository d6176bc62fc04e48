//! The sending side of Raft traffic: every group's RPCs to a peer travel on
//! the one framed connection this node keeps to it (openraft-multi's
//! `GroupRouter`, over `crate::peer::Links`).
//!
//! Invariants: each message names its group; a message is encoded once, in
//! the node's binary format (an entry's proposal bytes as they are); a peer
//! that cannot be reached, refuses the message or does not answer in time is
//! `Unreachable` / `Timeout` to openraft, which then backs off. Node
//! addresses come from membership, a dial override (`raft.dial`) winning;
//! forwarding uses the same connections. An AppendEntries (or heartbeat)
//! gets at least `min_append_ttl` to answer, whatever shorter deadline
//! openraft offers (see the field).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft_multi::GroupRouter;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::{LogId, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};
use crate::codec::{decode, encode, BytesRef};
use crate::metrics::Stage;
use crate::peer::{CallError, Kind, Links, Method};
use crate::routing::GroupId;

/// A ping: the groups the pinging node holds a replica of, each with the
/// log id of the membership its replica knows. (Older nodes send nothing.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub from: NodeId,
    pub hosted: Vec<(GroupId, Option<LogId>)>,
}

/// A ping's answer: who answered, which groups it leads right now, and of
/// the groups the pinger said it holds, those it leads under a committed
/// membership newer than the pinger's that leaves the pinger out (with that
/// membership's log id): the pinger missed being told it left them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub node: NodeId,
    pub leads: Vec<GroupId>,
    pub left: Vec<(GroupId, LogId)>,
}

/// The answer of a node from before `Pong::left`.
#[derive(Deserialize)]
struct PongV1 {
    #[allow(dead_code)]
    node: NodeId,
    leads: Vec<GroupId>,
}

/// What a ping learned: the groups the peer leads (`None` from a node too
/// old to list them) and the groups it says this node left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingAnswer {
    pub leads: Option<Vec<GroupId>>,
    pub left: Vec<(GroupId, LogId)>,
}

impl PingAnswer {
    fn decode(body: &[u8]) -> Self {
        if let Ok(p) = decode::<Pong>(body) {
            return Self { leads: Some(p.leads), left: p.left };
        }
        let leads = decode::<PongV1>(body).ok().map(|p| p.leads);
        Self { leads, left: Vec::new() }
    }
}

/// Routes every group's Raft RPCs to peers over one connection each.
#[derive(Clone)]
pub struct PeerRouter {
    inner: Arc<Inner>,
}

struct Inner {
    me: NodeId,
    links: Links,
    /// openraft gives AppendEntries and heartbeats a deadline of one
    /// heartbeat interval. A peer whose round trip plus fsync takes longer
    /// (a slow or distant link) would then never acknowledge anything:
    /// replication stalls while the leader, whose heartbeats still arrive,
    /// stays leader. So they get at least this long (the election timeout's
    /// lower bound: an answer later than that is useless anyway).
    min_append_ttl: Duration,
}

/// Why a message got no reply, before openraft's error types.
enum Failure {
    Timeout,
    Failed(String),
}

impl PeerRouter {
    /// A router for node `me` knowing `peers` (id, peer_addr), over `links`.
    pub fn new(
        me: NodeId,
        peers: impl IntoIterator<Item = (NodeId, String)>,
        links: Links,
        min_append_ttl: Duration,
    ) -> Self {
        for (id, addr) in peers {
            links.learn(id, &addr);
        }
        Self { inner: Arc::new(Inner { me, links, min_append_ttl }) }
    }

    /// The peer connections (forwarding uses them too).
    pub fn links(&self) -> &Links {
        &self.inner.links
    }

    /// Records a peer's address (from a membership entry).
    pub fn learn(&self, id: NodeId, peer_addr: &str) {
        self.inner.links.learn(id, peer_addr);
    }

    /// Every peer this node knows an address for (not itself).
    pub fn peers(&self) -> Vec<NodeId> {
        self.inner.links.peers()
    }

    /// Pings `target` with `ping` (encoded): `None` unless it answered
    /// within `ttl`.
    pub async fn ping(&self, target: NodeId, ping: &[u8], ttl: Duration) -> Option<PingAnswer> {
        let frame = self.inner.links.call(target, Method::Ping, 0, ping, ttl).await.ok()?;
        (frame.kind == Kind::Reply).then(|| PingAnswer::decode(&frame.body))
    }

    /// One message to `target` and its decoded reply.
    async fn call<T: DeserializeOwned>(
        &self,
        target: NodeId,
        method: Method,
        group: GroupId,
        body: &[u8],
        ttl: Duration,
    ) -> Result<T, Failure> {
        let frame = self.inner.links.call(target, method, group, body, ttl).await.map_err(|e| match e {
            CallError::Timeout => Failure::Timeout,
            CallError::Unreachable(why) => Failure::Failed(why),
        })?;
        match frame.kind {
            Kind::Reply => decode(&frame.body).map_err(|e| Failure::Failed(e.to_string())),
            _ => Err(Failure::Failed(String::from_utf8_lossy(&frame.body).into_owned())),
        }
    }

    /// openraft's error for a message to `target` that got no reply.
    fn rpc_error(&self, failure: Failure, action: RPCTypes, target: NodeId, ttl: Duration) -> RPCError<TypeConfig> {
        match failure {
            Failure::Timeout => RPCError::Timeout(Timeout { action, id: self.inner.me, target, timeout: ttl }),
            Failure::Failed(why) => RPCError::Unreachable(Unreachable::from_string(why)),
        }
    }

    async fn rpc<T: DeserializeOwned>(
        &self,
        target: NodeId,
        (method, action): (Method, RPCTypes),
        group: GroupId,
        body: Vec<u8>,
        ttl: Duration,
    ) -> Result<T, RPCError<TypeConfig>> {
        self.call(target, method, group, &body, ttl).await.map_err(|f| self.rpc_error(f, action, target, ttl))
    }
}

impl GroupRouter<TypeConfig, GroupId> for PeerRouter {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let carries_entries = !rpc.entries.is_empty();
        let started = Instant::now();
        let ttl = option.hard_ttl().max(self.inner.min_append_ttl);
        let kind = (Method::AppendEntries, RPCTypes::AppendEntries);
        let reply = self.rpc(target, kind, group, encode(&rpc), ttl).await;
        if carries_entries && reply.is_ok() {
            crate::metrics::stage(Stage::Replicate, started.elapsed());
        }
        reply
    }

    async fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(target, (Method::Vote, RPCTypes::Vote), group, encode(&rpc), option.hard_ttl()).await
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(target, (Method::PreVote, RPCTypes::Vote), group, encode(&rpc), option.hard_ttl()).await
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let body = encode(&(vote, snapshot.meta, BytesRef(&snapshot.snapshot)));
        // Snapshots may be large: give them a generous deadline of their own.
        let ttl = option.hard_ttl().max(Duration::from_secs(30));
        let kind = (Method::Snapshot, RPCTypes::InstallSnapshot);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = self.rpc(target, kind, group, body, ttl) => result.map_err(StreamingError::from),
        }
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group: GroupId,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let kind = (Method::TransferLeader, RPCTypes::TransferLeader);
        self.rpc(target, kind, group, encode(&req), option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct OldPong {
        node: NodeId,
        leads: Vec<GroupId>,
    }

    #[test]
    fn pongs_of_every_version_decode() {
        let at: LogId = serde_json::from_str(r#"{"leader_id":{"term":3,"node_id":1},"index":7}"#).unwrap();
        let new = Pong { node: 1, leads: vec![0, 2], left: vec![(4, at.clone())] };
        assert_eq!(PingAnswer::decode(&encode(&new)), PingAnswer { leads: Some(vec![0, 2]), left: vec![(4, at)] });
        let old = OldPong { node: 1, leads: vec![2] };
        assert_eq!(PingAnswer::decode(&encode(&old)), PingAnswer { leads: Some(vec![2]), left: vec![] });
        assert_eq!(PingAnswer::decode(&encode(&1u64)), PingAnswer::default(), "the oldest: only an id");
    }
}
