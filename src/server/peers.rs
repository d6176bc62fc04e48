//! The peer port's handler: Raft messages go to their group, forwarded
//! work to this node's lock service.
//!
//! Invariant: the method alone picks the side; a Raft refusal travels as
//! its message text, a forwarded one as its `ApiError`.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::forward::ForwardService;
use crate::peer::{Answer, Handler, Method};
use crate::raft::service::RaftPeerService;

pub struct PeerHandler {
    raft: Arc<RaftPeerService>,
    forward: Arc<ForwardService>,
}

impl PeerHandler {
    pub fn new(raft: RaftPeerService, forward: ForwardService) -> Self {
        Self { raft: Arc::new(raft), forward: Arc::new(forward) }
    }
}

impl Handler for PeerHandler {
    fn handle(&self, method: Method, group: u32, body: Bytes) -> BoxFuture<'static, Answer> {
        if RaftPeerService::serves(method) {
            let raft = self.raft.clone();
            Box::pin(async move { raft.handle(method, group, body).await.map_err(String::into_bytes) })
        } else {
            let forward = self.forward.clone();
            Box::pin(async move { forward.handle(method, group, body).await })
        }
    }
}
