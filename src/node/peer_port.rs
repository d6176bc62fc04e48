//! The peer port: Raft messages go to their group, forwarded work to this
//! node's request path.
//!
//! Invariant: the method alone picks the side; a Raft refusal travels as
//! its message text, a forwarded one as its `ApiError`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::peer::{Answer, Handler, Method};
use crate::raft::cluster::peer_frame_limit;
use crate::raft::receive::RaftPeerService;
use crate::service::forward::serve::ForwardService;
use crate::service::LockService;

struct PeerHandler {
    raft: Arc<RaftPeerService>,
    forward: Arc<ForwardService>,
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

/// Serves the peer port on `listener` until `shutdown` resolves, then
/// closes this node's own connections to its peers.
pub async fn serve(
    listener: TcpListener,
    service: Arc<LockService>,
    tls: Option<crate::peer::server::Acceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let config = service.config();
    let transfer_wake = Duration::from_millis(config.raft.election_timeout_max_ms * 2);
    let cluster = service.cluster().clone();
    let raft = RaftPeerService::new(cluster.groups().quiescer().clone(), cluster.me(), transfer_wake);
    let limit = peer_frame_limit(config);
    let handler = Arc::new(PeerHandler { raft: Arc::new(raft), forward: Arc::new(ForwardService::new(service)) });
    crate::peer::server::serve(listener, handler, tls, limit, shutdown).await;
    cluster.router().links().close_all();
}
