//! The network of one group towards one peer: the shared [`PeerRouter`]
//! bound to (group, target), and the group's AppendEntries stream.
//!
//! openraft replicates through a stream of AppendEntries requests per
//! follower. After every commit it sends an entry-less request that only
//! carries the new commit index, unless new entries are already waiting to
//! piggyback on: about one request in three under load, each a full round
//! through both nodes' Raft cores. This stream holds such a commit-only
//! request for up to `COMMIT_LINGER`: if the next request follows within
//! it, continuing from the same point, only that one is sent, and it
//! carries the commit index too (a later, larger one).
//!
//! Invariants (why folding is safe): the folded request R1 has no entries
//! and the same vote and `prev_log_id` as the request R2 sent in its place,
//! and R2's `leader_commit` is at least R1's; so whatever the follower
//! answers R2 is what it would have answered R1 first — success (it holds
//! `prev_log_id`: R1's answer is "matching `prev_log_id`"), conflict at
//! `prev_log_id`, or a higher vote — and that answer is yielded for R1,
//! then R2's own, in request order, as openraft requires. A request that
//! does not fit is sent as it is. Nothing is held longer than
//! `COMMIT_LINGER`, so a follower learns a commit at most that much later.

use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::error::{RPCError, ReplicationClosed, StreamingError};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use openraft_multi::GroupRouter;

use super::network::PeerRouter;
use super::types::{LogId, NodeId, NodeInfo, Snapshot, SnapshotData, TypeConfig, Vote};
use crate::routing::GroupId;

/// Longest a commit-only AppendEntries waits for a request to ride on.
const COMMIT_LINGER: Duration = Duration::from_millis(1);

type Request = AppendEntriesRequest<TypeConfig>;
type Response = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// The network factory of one group.
#[derive(Clone)]
pub struct GroupNetwork {
    router: PeerRouter,
    group: GroupId,
}

impl GroupNetwork {
    pub fn new(router: PeerRouter, group: GroupId) -> Self {
        Self { router, group }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupPeer;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        self.router.learn(target, &node.peer_addr);
        GroupPeer { router: self.router.clone(), target, group: self.group }
    }
}

/// One group's network towards one peer.
pub struct GroupPeer {
    router: PeerRouter,
    target: NodeId,
    group: GroupId,
}

fn last_log_id(req: &Request) -> Option<LogId> {
    req.entries.last().map(|e| e.log_id).or(req.prev_log_id)
}

/// Whether `next` can be sent in place of the commit-only `held`.
fn folds(held: &Request, next: &Request) -> bool {
    held.entries.is_empty()
        && next.vote == held.vote
        && next.prev_log_id == held.prev_log_id
        && next.leader_commit >= held.leader_commit
}

/// What the follower's answer to a request means for its stream.
fn stream_result(req: &Request, resp: Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>>) -> Response {
    resp.map(|r| r.into_stream_result(req.prev_log_id, last_log_id(req)))
}

/// The answer R1 (folded into R2) would have had, from R2's result.
fn folded_result(held: &Request, sent: &Response) -> Response {
    match sent {
        Ok(Ok(_)) => Ok(Ok(held.prev_log_id)),
        Ok(Err(StreamAppendError::Conflict(at))) => Ok(Err(StreamAppendError::Conflict(*at))),
        Ok(Err(StreamAppendError::HigherVote(v))) => Ok(Err(StreamAppendError::HigherVote(*v))),
        Err(e) => Err(e.clone()),
    }
}

struct Streaming<S> {
    peer: GroupPeer,
    input: S,
    option: RPCOption,
    /// A request pulled from the input but not yet sent.
    next: Option<Request>,
    /// Answers to yield before sending anything else.
    ready: std::collections::VecDeque<Response>,
    /// The input ended, or an answer ends the stream (an error, or a
    /// partial success: openraft starts a new stream from there).
    ended: bool,
}

impl<S: Stream<Item = Request> + Unpin> Streaming<S> {
    async fn send(&mut self, req: &Request) -> Response {
        let (router, target, group) = (&self.peer.router, self.peer.target, self.peer.group);
        let resp = router.append_entries(target, group, req.clone(), self.option.clone()).await;
        let partial = matches!(&resp, Ok(AppendEntriesResponse::PartialSuccess(x)) if *x != last_log_id(req));
        let answer = stream_result(req, resp);
        if partial || !matches!(answer, Ok(Ok(_))) {
            self.ended = true;
        }
        answer
    }

    /// The next answer of the stream, sending what it takes.
    async fn answer(&mut self) -> Option<Response> {
        if let Some(ready) = self.ready.pop_front() {
            return Some(ready);
        }
        if self.ended {
            return None;
        }
        // (`ended` set by a send below still lets its answer, and a folded
        // request's pair, be yielded first.)
        let req = match self.next.take() {
            Some(req) => req,
            None => self.input.next().await?,
        };
        if !req.entries.is_empty() {
            return Some(self.send(&req).await);
        }
        // Commit-only: wait briefly for a request to carry it.
        match tokio::time::timeout(COMMIT_LINGER, self.input.next()).await {
            Ok(Some(next)) if folds(&req, &next) => {
                let sent = self.send(&next).await;
                let held = folded_result(&req, &sent);
                // After an error only the first answer counts: the stream ends.
                if matches!(held, Ok(Ok(_))) {
                    self.ready.push_back(sent);
                }
                Some(held)
            }
            Ok(Some(next)) => {
                self.next = Some(next);
                Some(self.send(&req).await)
            }
            Ok(None) => {
                self.ended = true;
                Some(self.send(&req).await)
            }
            Err(_) => Some(self.send(&req).await),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for GroupPeer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: Request,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.router.append_entries(self.target, self.group, rpc, option).await
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> futures::future::BoxFuture<'s, Result<futures::stream::BoxStream<'s, Response>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = Request> + OptionalSend + Unpin + 'static,
    {
        let peer = GroupPeer { router: self.router.clone(), target: self.target, group: self.group };
        let streaming = Streaming { peer, input, option, next: None, ready: Default::default(), ended: false };
        let answers = futures::stream::unfold(streaming, |mut s| async move {
            let answer = s.answer().await?;
            Some((answer, s))
        });
        Box::pin(async move { Ok(answers.boxed()) })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.router.vote(self.target, self.group, rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.router.pre_vote(self.target, self.group, rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        self.router.full_snapshot(self.target, self.group, vote, snapshot, cancel, option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.router.transfer_leader(self.target, self.group, req, option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{blank_ent, log_id};

    fn req(term: u64, prev: Option<u64>, entries: &[u64], commit: Option<u64>) -> Request {
        Request {
            vote: Vote::new_committed(term, 1),
            prev_log_id: prev.map(|i| log_id::<TypeConfig>(term, 1, i)),
            entries: entries.iter().map(|i| blank_ent::<TypeConfig>(term, 1, *i)).collect(),
            leader_commit: commit.map(|i| log_id::<TypeConfig>(term, 1, i)),
        }
    }

    #[test]
    fn only_a_commit_only_request_folds_into_one_from_the_same_point() {
        let held = req(2, Some(5), &[], Some(5));
        assert!(folds(&held, &req(2, Some(5), &[6, 7], Some(5))), "same point, entries follow");
        assert!(folds(&held, &req(2, Some(5), &[], Some(6))), "a later commit-only one");
        assert!(!folds(&held, &req(2, Some(4), &[5, 6], Some(5))), "another starting point");
        assert!(!folds(&held, &req(3, Some(5), &[6], Some(5))), "another vote");
        assert!(!folds(&held, &req(2, Some(5), &[6], Some(4))), "an older commit");
        assert!(!folds(&req(2, Some(5), &[6], Some(5)), &req(2, Some(5), &[6], Some(5))), "held carries entries");
    }

    #[test]
    fn the_folded_request_gets_the_answer_it_would_have_had() {
        let held = req(2, Some(5), &[], Some(5));
        let sent = req(2, Some(5), &[6, 7], Some(5));
        let ok = stream_result(&sent, Ok(AppendEntriesResponse::Success));
        assert_eq!(ok, Ok(Ok(Some(log_id::<TypeConfig>(2, 1, 7)))));
        assert_eq!(folded_result(&held, &ok), Ok(Ok(held.prev_log_id)), "it matched prev_log_id");
        let conflict = stream_result(&sent, Ok(AppendEntriesResponse::Conflict));
        assert_eq!(folded_result(&held, &conflict), conflict, "the same prev_log_id conflicts the same way");
        let higher = Vote::new_committed(3, 2);
        let refused = stream_result(&sent, Ok(AppendEntriesResponse::HigherVote(higher)));
        assert_eq!(folded_result(&held, &refused), Ok(Err(StreamAppendError::HigherVote(higher))));
    }
}
