//! A client session: a gRPC stream that keeps the session's grants alive.
//!
//! Invariants: the session lives on one node (the one its stream talks to)
//! and every acquire under it is sent to that node; a background task sends
//! a keepalive every third of the TTL; closing or dropping the session ends
//! the stream, and the node releases everything held under it.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::options::AcquireOptions;
use super::rpc::Client;
use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::proto::v1 as pb;
use crate::proto::v1::lock_client::LockClient;

pub struct Session {
    client: Client,
    id: u64,
    ttl_ms: u64,
    channel: Channel,
    ended: watch::Receiver<bool>,
    keepalive: JoinHandle<()>,
}

impl Client {
    /// Opens a session on the first reachable node; `ttl_ms` (or the
    /// server's default) is how long it survives without a keepalive.
    pub async fn session(&self, ttl_ms: Option<u64>) -> Result<Session, ApiError> {
        let addr = self.first_seed();
        let channel = self.channel(&addr)?;
        let (tx, rx) = mpsc::channel(4);
        let _ = tx.send(pb::SessionRequest { ttl_ms: ttl_ms.unwrap_or(0) }).await;
        let mut stream = LockClient::new(channel.clone())
            .session(self.request(ReceiverStream::new(rx)))
            .await
            .map_err(|s| ApiError::from_status(&s))?
            .into_inner();
        let opened = stream
            .message()
            .await
            .map_err(|s| ApiError::from_status(&s))?
            .ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "the node closed the session stream at once"))?;
        let (ended_tx, ended) = watch::channel(false);
        let every = Duration::from_millis(opened.ttl_ms / 3).max(Duration::from_millis(10));
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if tx.send(pb::SessionRequest { ttl_ms: 0 }).await.is_err() {
                    break;
                }
                match stream.message().await {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            let _ = ended_tx.send(true);
        });
        Ok(Session { client: self.clone(), id: opened.session_id, ttl_ms: opened.ttl_ms, channel, ended, keepalive })
    }
}

impl Session {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// True once the stream broke (the node may have ended the session).
    pub fn is_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// Acquires under this session: the node keeps the grant alive while
    /// the session lives and releases it when the session ends.
    pub async fn acquire(&self, name: &str, opts: AcquireOptions) -> Result<pb::AcquireResponse, ApiError> {
        let key = opts.key.clone().unwrap_or_else(|| LockKey::from_u128(rand::random()).to_string());
        let req = opts.request(name, key, self.id);
        LockClient::new(self.channel.clone())
            .acquire(self.client.request(req))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ApiError::from_status(&s))
    }

    /// Ends the session: the node releases everything held under it.
    pub fn close(self) {
        self.keepalive.abort();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}
