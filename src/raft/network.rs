//! The sending side of Raft traffic: one gRPC channel per peer node, shared
//! by every group (openraft-multi's `GroupRouter`).
//!
//! Messages other than snapshots go through the peer's `batcher`, so under
//! load many groups' messages share one call.
//!
//! Invariants: each message names its group; channels are created lazily
//! and once per peer, so `new_client` stays cheap (openraft calls it on every
//! election); a peer that cannot be reached or answers with an error is
//! `Unreachable` to openraft, which then backs off. A configured dial
//! override (`raft.dial`) for a peer always wins over the address that
//! membership lists, for Raft and forwarding alike: every node-to-node
//! channel comes from [`PeerRouter::channel`]. An AppendEntries (or
//! heartbeat) gets at least `min_append_ttl` to answer, whatever shorter
//! deadline openraft offers (see the field).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft_multi::{GroupNetworkAdapter, GroupNetworkFactory, GroupRouter};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::batcher::{Answer, Failure, PeerBatcher, SendBatch};
use super::types::{NodeId, NodeInfo, Snapshot, SnapshotData, TypeConfig, Vote};
use crate::proto::peer::raft_peer_client::RaftPeerClient;
use crate::proto::peer::{PingRequest, RaftBatchRequest, RaftKind, RaftOutcome, RaftReply, RaftRequest};
use crate::routing::GroupId;
use crate::storage::codec::{decode, encode};

/// Routes every group's Raft RPCs to peers over one channel each.
#[derive(Clone)]
pub struct PeerRouter {
    inner: Arc<Inner>,
}

struct Inner {
    me: NodeId,
    /// The address dialled for each peer: its override, else its `peer_addr`.
    addrs: DashMap<NodeId, String>,
    /// `raft.dial`: fixed for the life of the node.
    overrides: BTreeMap<NodeId, String>,
    channels: DashMap<NodeId, Channel>,
    batchers: DashMap<NodeId, Arc<PeerBatcher>>,
    max_message_bytes: usize,
    /// openraft gives AppendEntries and heartbeats a deadline of one
    /// heartbeat interval. A peer whose round trip plus fsync takes longer
    /// (a slow or distant link) would then never acknowledge anything:
    /// replication stalls while the leader, whose heartbeats still arrive,
    /// stays leader. So they get at least this long (the election timeout's
    /// lower bound: an answer later than that is useless anyway).
    min_append_ttl: Duration,
    /// Mutual TLS to peers, when the node runs with TLS.
    tls: Option<ClientTlsConfig>,
}

impl PeerRouter {
    /// A router for node `me` knowing `peers` (id, peer_addr); `overrides`
    /// replace the address dialled for some of them.
    pub fn new(
        me: NodeId,
        peers: impl IntoIterator<Item = (NodeId, String)>,
        overrides: BTreeMap<NodeId, String>,
        max_message_bytes: usize,
        min_append_ttl: Duration,
        tls: Option<ClientTlsConfig>,
    ) -> Self {
        let (addrs, channels, batchers) = (DashMap::new(), DashMap::new(), DashMap::new());
        let inner = Inner { me, addrs, overrides, channels, batchers, max_message_bytes, min_append_ttl, tls };
        let router = Self { inner: Arc::new(inner) };
        for (id, addr) in peers {
            router.learn(id, &addr);
        }
        router
    }

    /// Records a peer's address (from a membership entry); a dial override
    /// for the peer takes its place.
    pub fn learn(&self, id: NodeId, peer_addr: &str) {
        let addr = self.inner.overrides.get(&id).map_or(peer_addr, String::as_str);
        if self.inner.addrs.get(&id).is_some_and(|a| a.as_str() == addr) {
            return;
        }
        self.inner.addrs.insert(id, addr.to_owned());
        self.inner.channels.remove(&id);
    }

    /// The address this node dials for `id`, if it knows the peer.
    pub fn dial_addr(&self, id: NodeId) -> Option<String> {
        self.inner.addrs.get(&id).map(|a| a.clone())
    }

    /// The channel to `target`, created lazily (no connection attempt here).
    pub fn channel(&self, target: NodeId) -> Result<Channel, String> {
        if let Some(ch) = self.inner.channels.get(&target) {
            return Ok(ch.clone());
        }
        let addr =
            self.inner.addrs.get(&target).map(|a| a.clone()).ok_or_else(|| format!("node {target} is unknown"))?;
        let scheme = if self.inner.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| e.to_string())?;
        if let Some(tls) = &self.inner.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| e.to_string())?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_lazy();
        self.inner.channels.insert(target, channel.clone());
        Ok(channel)
    }

    /// Every peer this node knows an address for (not itself).
    pub fn peers(&self) -> Vec<NodeId> {
        self.inner.addrs.iter().map(|e| *e.key()).filter(|id| *id != self.inner.me).collect()
    }

    /// Pings `target`; true when it answered within `ttl`.
    pub async fn ping(&self, target: NodeId, ttl: Duration) -> bool {
        let Ok(mut client) = self.client(target) else { return false };
        let mut req = tonic::Request::new(PingRequest { from: self.inner.me });
        req.set_timeout(ttl);
        answered(ttl, client.ping(req)).await.is_ok()
    }

    fn client(&self, target: NodeId) -> Result<RaftPeerClient<Channel>, String> {
        let limit = self.inner.max_message_bytes;
        Ok(RaftPeerClient::new(self.channel(target)?).max_decoding_message_size(limit).max_encoding_message_size(limit))
    }

    fn batcher(&self, target: NodeId) -> Arc<PeerBatcher> {
        if let Some(b) = self.inner.batchers.get(&target) {
            return b.clone();
        }
        let half = self.inner.max_message_bytes / 2;
        self.inner.batchers.entry(target).or_insert_with(|| PeerBatcher::new(half)).clone()
    }

    /// One message to `target`, batched with other groups' messages to it.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        target: NodeId,
        request: RaftRequest,
        action: RPCTypes,
        ttl: Duration,
    ) -> Result<T, RPCError<TypeConfig>> {
        let sender = BatchSender { router: self.clone(), target };
        let reply = self.batcher(target).call(&sender, request, ttl).await;
        reply.and_then(decode_reply).map_err(|f| self.rpc_error(f, action, target, ttl))
    }

    /// One message to `target` in a call of its own (snapshots).
    async fn call_alone<T: serde::de::DeserializeOwned>(
        &self,
        target: NodeId,
        request: RaftRequest,
        action: RPCTypes,
        ttl: Duration,
    ) -> Result<T, RPCError<TypeConfig>> {
        let reply = async {
            let mut client = self.client(target).map_err(Failure::Failed)?;
            let mut req = tonic::Request::new(request);
            req.set_timeout(ttl);
            answered(ttl, client.raft(req)).await
        };
        reply.await.and_then(decode_reply).map_err(|f| self.rpc_error(f, action, target, ttl))
    }

    /// openraft's error for a message to `target` that got no reply.
    fn rpc_error(&self, failure: Failure, action: RPCTypes, target: NodeId, ttl: Duration) -> RPCError<TypeConfig> {
        match failure {
            Failure::Timeout => RPCError::Timeout(Timeout { action, id: self.inner.me, target, timeout: ttl }),
            Failure::Failed(why) => RPCError::Unreachable(Unreachable::from_string(why)),
        }
    }
}

/// The answer of one gRPC call made within `ttl`.
async fn answered<R>(
    ttl: Duration,
    call: impl Future<Output = Result<tonic::Response<R>, tonic::Status>>,
) -> Result<R, Failure> {
    match tokio::time::timeout(ttl, call).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(status)) => Err(Failure::Failed(status.to_string())),
        Ok(Ok(reply)) => Ok(reply.into_inner()),
    }
}

fn decode_reply<T: serde::de::DeserializeOwned>(reply: RaftReply) -> Result<T, Failure> {
    decode(&reply.payload).map_err(|e| Failure::Failed(e.to_string()))
}

/// Sends a peer's batches over its channel.
#[derive(Clone)]
struct BatchSender {
    router: PeerRouter,
    target: NodeId,
}

impl SendBatch for BatchSender {
    async fn send(&self, batch: Vec<RaftRequest>, ttl: Duration) -> Vec<Answer> {
        let n = batch.len();
        let all = |f: Failure| vec![Err(f); n];
        let mut client = match self.router.client(self.target) {
            Ok(client) => client,
            Err(why) => return all(Failure::Failed(why)),
        };
        let mut req = tonic::Request::new(RaftBatchRequest { requests: batch });
        req.set_timeout(ttl);
        match answered(ttl, client.raft_batch(req)).await {
            Err(failure) => all(failure),
            Ok(reply) => reply.outcomes.into_iter().map(outcome).collect(),
        }
    }
}

fn outcome(o: RaftOutcome) -> Answer {
    match o.reply {
        Some(reply) if o.error.is_empty() => Ok(reply),
        _ => Err(Failure::Failed(o.error)),
    }
}

fn request(group: GroupId, kind: RaftKind, payload: Vec<u8>) -> RaftRequest {
    RaftRequest { group, kind: kind as i32, payload, data: Vec::new() }
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
        let started = std::time::Instant::now();
        let req = request(group, RaftKind::AppendEntries, encode(&rpc));
        let ttl = option.hard_ttl().max(self.inner.min_append_ttl);
        let reply = self.call(target, req, RPCTypes::AppendEntries, ttl).await;
        if carries_entries && reply.is_ok() {
            crate::metrics::stage(crate::metrics::Stage::Replicate, started.elapsed());
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
        let req = request(group, RaftKind::Vote, encode(&rpc));
        self.call(target, req, RPCTypes::Vote, option.hard_ttl()).await
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let req = request(group, RaftKind::PreVote, encode(&rpc));
        self.call(target, req, RPCTypes::Vote, option.hard_ttl()).await
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
        let mut req = request(group, RaftKind::FullSnapshot, encode(&(vote, snapshot.meta)));
        req.data = snapshot.snapshot;
        // Snapshots may be large: give them a generous deadline of their own.
        let ttl = option.hard_ttl().max(Duration::from_secs(30));
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = self.call_alone(target, req, RPCTypes::InstallSnapshot, ttl) => result.map_err(StreamingError::from),
        }
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group: GroupId,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let req = request(group, RaftKind::TransferLeader, encode(&req));
        self.call(target, req, RPCTypes::TransferLeader, option.hard_ttl()).await
    }
}

/// The network factory of one group: the shared router bound to the group.
pub type GroupNetwork = GroupNetworkFactory<PeerRouter, GroupId>;

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupNetworkAdapter<TypeConfig, GroupId, PeerRouter>;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        self.factory.learn(target, &node.peer_addr);
        GroupNetworkAdapter::new(self.factory.clone(), target, self.group_id)
    }
}

#[cfg(test)]
mod tests {
    use super::PeerRouter;

    #[test]
    fn dial_overrides_win_over_membership() {
        let peers = [(2, "node2:7101".to_string()), (3, "node3:7101".to_string())];
        let overrides = [(2, "proxy:9002".to_string())].into();
        let router = PeerRouter::new(1, peers, overrides, 4096, std::time::Duration::from_secs(1), None);
        assert_eq!(router.dial_addr(2).as_deref(), Some("proxy:9002"));
        router.learn(2, "elsewhere:7101");
        assert_eq!(router.dial_addr(2).as_deref(), Some("proxy:9002"));
        router.learn(3, "moved:7101");
        assert_eq!(router.dial_addr(3).as_deref(), Some("moved:7101"));
        router.learn(4, "node4:7101");
        assert_eq!(router.dial_addr(4).as_deref(), Some("node4:7101"));
    }
}
