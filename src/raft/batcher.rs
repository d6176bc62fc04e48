//! Batching of Raft RPCs per peer: the messages of many groups to one peer
//! travel in one `RaftBatch` call.
//!
//! A caller queues its message, then tries to take one of `MAX_IN_FLIGHT`
//! send slots of the peer. With a slot it sends everything queued (its own
//! message among them) as one batch and, when the answer is back, frees the
//! slot and starts a send for whatever queued meanwhile. Without a slot it
//! waits: a finishing sender takes its message. At low load every message
//! goes out at once, alone, on its caller's task (no extra hop); under load
//! messages of many groups share one HTTP/2 request and its answer.
//!
//! Invariants: each queued message is answered exactly once (its reply, or
//! an error when the batch fails or its sender is dropped); a slot is freed
//! exactly once, even if its sender's future is dropped mid-flight; a batch
//! holds at most `MAX_BATCH` messages and about `max_bytes` of payload; no
//! lock is held across an `.await`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::proto::peer::{RaftReply, RaftRequest};

/// Batches in flight per peer at once (HTTP/2 multiplexes them).
const MAX_IN_FLIGHT: usize = 4;
/// Messages per batch at most.
const MAX_BATCH: usize = 64;

pub type Answer = Result<RaftReply, Failure>;

/// Why a message got no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the deadline.
    Timeout,
    /// The peer could not be reached or refused the message.
    Failed(String),
}

struct Pending {
    request: RaftRequest,
    ttl: Duration,
    answer: oneshot::Sender<Answer>,
}

/// Sends one batch within `ttl`; answers in request order, one per request.
pub trait SendBatch: Clone + Send + Sync + 'static {
    fn send(&self, batch: Vec<RaftRequest>, ttl: Duration) -> impl std::future::Future<Output = Vec<Answer>> + Send;
}

/// The queue and send slots of one peer.
pub struct PeerBatcher {
    queue: Mutex<Vec<Pending>>,
    in_flight: AtomicUsize,
    max_bytes: usize,
}

impl PeerBatcher {
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self { queue: Mutex::new(Vec::new()), in_flight: AtomicUsize::new(0), max_bytes })
    }

    /// Queues `request` and returns its answer once some sender delivered
    /// it, or `Timeout` after `ttl`. A caller that sends waits for its batch
    /// (bounded by the batch's own deadline).
    pub async fn call<S: SendBatch>(self: &Arc<Self>, sender: &S, request: RaftRequest, ttl: Duration) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.lock().push(Pending { request, ttl, answer: tx });
        if let Some(slot) = self.take_slot() {
            self.send_queued(sender, slot).await;
        }
        let dropped = || Failure::Failed("the batch carrying this message was dropped: retry".into());
        match tokio::time::timeout(ttl, rx).await {
            Err(_) => Err(Failure::Timeout),
            Ok(answer) => answer.unwrap_or_else(|_| Err(dropped())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        let mut current = self.in_flight.load(Ordering::Acquire);
        while current < MAX_IN_FLIGHT {
            match self.in_flight.compare_exchange(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Slot { batcher: self.clone() }),
                Err(seen) => current = seen,
            }
        }
        None
    }

    /// The next batch from the queue: up to `MAX_BATCH` messages and about
    /// `max_bytes` (always at least one message).
    fn next_batch(&self) -> Vec<Pending> {
        let mut queue = self.lock();
        let (mut bytes, mut n) = (0, 0);
        while n < queue.len().min(MAX_BATCH) {
            bytes += queue[n].request.payload.len() + queue[n].request.data.len();
            if n > 0 && bytes > self.max_bytes {
                break;
            }
            n += 1;
        }
        queue.drain(..n).collect()
    }

    /// Sends batches until the queue is empty (the caller holds a slot).
    async fn drain<S: SendBatch>(&self, sender: &S) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                return;
            }
            let ttl = batch.iter().map(|p| p.ttl).max().unwrap_or_default();
            let (requests, answers): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.request, p.answer)).unzip();
            let mut replies = sender.send(requests, ttl).await.into_iter();
            for answer in answers {
                let reply =
                    replies.next().unwrap_or_else(|| Err(Failure::Failed("the peer answered too few messages".into())));
                let _ = answer.send(reply);
            }
        }
    }

    /// Sends what is queued holding `slot`, then frees it; a message queued
    /// after the last drain but before the slot was freed found no slot, so
    /// a task of its own sends it.
    async fn send_queued<S: SendBatch>(self: &Arc<Self>, sender: &S, slot: Slot) {
        self.drain(sender).await;
        drop(slot);
        if self.lock().is_empty() {
            return;
        }
        if let Some(slot) = self.take_slot() {
            let (batcher, sender) = (self.clone(), sender.clone());
            tokio::spawn(async move { batcher.keep_draining(&sender, slot).await });
        }
    }

    async fn keep_draining<S: SendBatch>(self: &Arc<Self>, sender: &S, mut slot: Slot) {
        loop {
            self.drain(sender).await;
            drop(slot);
            if self.lock().is_empty() {
                return;
            }
            match self.take_slot() {
                Some(next) => slot = next,
                None => return,
            }
        }
    }
}

/// One of a peer's send slots; freed on drop.
struct Slot {
    batcher: Arc<PeerBatcher>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.batcher.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Echoes each request's group and counts batches and their sizes.
    #[derive(Clone, Default)]
    struct Echo {
        batches: Arc<AtomicUsize>,
        largest: Arc<AtomicUsize>,
    }

    impl SendBatch for Echo {
        async fn send(&self, batch: Vec<RaftRequest>, _ttl: Duration) -> Vec<Answer> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(batch.len(), Ordering::SeqCst);
            tokio::task::yield_now().await;
            batch.into_iter().map(|r| Ok(RaftReply { payload: r.group.to_be_bytes().to_vec() })).collect()
        }
    }

    fn request(group: u32) -> RaftRequest {
        RaftRequest { group, kind: 1, payload: vec![0; 10], data: Vec::new() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_answer_and_load_forms_batches() {
        let batcher = PeerBatcher::new(1 << 20);
        let echo = Echo::default();
        let calls = (0..500u32).map(|g| {
            let (batcher, echo) = (batcher.clone(), echo.clone());
            tokio::spawn(async move { (g, batcher.call(&echo, request(g), Duration::from_secs(10)).await) })
        });
        for call in futures::future::join_all(calls).await {
            let (g, answer) = call.unwrap();
            assert_eq!(answer.unwrap().payload, g.to_be_bytes().to_vec(), "answer of group {g}");
        }
        assert_eq!(batcher.in_flight.load(Ordering::SeqCst), 0, "every slot was freed");
        assert!(batcher.lock().is_empty(), "nothing left queued");
        let batches = echo.batches.load(Ordering::SeqCst);
        assert!(batches < 500, "500 concurrent calls shared batches ({batches} batches)");
        assert!(echo.largest.load(Ordering::SeqCst) <= MAX_BATCH);
    }

    fn pending(group: u32) -> Pending {
        Pending { request: request(group), ttl: Duration::from_secs(1), answer: oneshot::channel().0 }
    }

    #[tokio::test]
    async fn a_batch_stops_at_the_byte_limit_but_carries_at_least_one() {
        let batcher = PeerBatcher::new(25);
        for g in 0..5 {
            batcher.lock().push(pending(g));
        }
        assert_eq!(batcher.next_batch().len(), 2, "two 10-byte payloads fit in 25 bytes");
        let big = PeerBatcher::new(1);
        big.lock().push(pending(0));
        assert_eq!(big.next_batch().len(), 1, "an oversized message still goes alone");
    }
}
