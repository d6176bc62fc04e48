//! The peer port: accepts other nodes' connections and serves their frames.
//!
//! Invariants: every accepted connection has TCP_NODELAY set (a reply split
//! over segments must not wait for a delayed ACK); with TLS, a peer must
//! present a certificate signed by the cluster CA and finish its handshake
//! within `HANDSHAKE_TIMEOUT`; on shutdown the listener stops and every
//! connection it accepted is closed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpListener;

use super::conn::{Conn, Handler};

/// Longest a peer's TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub type Acceptor = tokio_rustls::TlsAcceptor;

/// Serves `listener` with `handler` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    tls: Option<Acceptor>,
    max_frame: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let accepted: Arc<std::sync::Mutex<Vec<Weak<Conn>>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            got = listener.accept() => match got {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a peer connection failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set nodelay on a peer connection");
        }
        let (handler, tls, accepted) = (handler.clone(), tls.clone(), accepted.clone());
        tokio::spawn(async move {
            let conn = match tls {
                None => {
                    let (read, write) = stream.into_split();
                    Conn::start(read, write, max_frame, Some(handler))
                }
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let (read, write) = tokio::io::split(tls);
                        Conn::start(read, write, max_frame, Some(handler))
                    }
                    Ok(Err(err)) => return tracing::debug!(error = %err, "peer tls handshake failed"),
                    Err(_) => return tracing::debug!("peer tls handshake timed out"),
                },
            };
            let mut list = accepted.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|c| c.strong_count() > 0);
            list.push(Arc::downgrade(&conn));
        });
    }
    let list = std::mem::take(&mut *accepted.lock().unwrap_or_else(|p| p.into_inner()));
    for conn in list.iter().filter_map(Weak::upgrade) {
        conn.close("the node is stopping");
    }
}
