//! The Rust client of shardlock.
//!
//! [`Client`] talks to one node, which forwards to group leaders as needed.
//! Every failure is an [`ApiError`] with the server's code, so callers match
//! on `ErrorCode` (and `row(code).retryable`), never on message text.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{ApiError, ErrorCode};
use crate::proto::v1 as pb;
use crate::proto::v1::admin_client::AdminClient;
use crate::proto::v1::lock_client::LockClient;

/// Options of an acquire; the defaults ask for a try-lock of a mutex with
/// the server's default TTL and a server-generated key.
#[derive(Clone, Debug, Default)]
pub struct AcquireOptions {
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: u64,
    pub key: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    lock: LockClient<Channel>,
    admin: AdminClient<Channel>,
}

fn failed(status: tonic::Status) -> ApiError {
    ApiError::from_status(&status)
}

impl Client {
    /// Connects to the node at `addr` (`host:port` or a URL).
    pub async fn connect(addr: &str) -> Result<Self, ApiError> {
        let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        let endpoint = Endpoint::from_shared(url)
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, format!("bad address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|e| {
            ApiError::new(ErrorCode::Unavailable, format!("cannot connect to {addr}: {e}; is the node running?"))
        })?;
        Ok(Self { lock: LockClient::new(channel.clone()), admin: AdminClient::new(channel) })
    }

    pub async fn acquire(&mut self, name: &str, opts: AcquireOptions) -> Result<pb::AcquireResponse, ApiError> {
        let req = pb::AcquireRequest {
            name: name.as_bytes().to_vec(),
            size: opts.size,
            permits: opts.permits,
            ttl_ms: opts.ttl_ms,
            wait_ms: opts.wait_ms,
            key: opts.key.unwrap_or_default(),
        };
        self.lock.acquire(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn release(&mut self, name: &str, key: &str) -> Result<pb::ReleaseResponse, ApiError> {
        let req = pb::ReleaseRequest { name: name.as_bytes().to_vec(), key: key.to_owned() };
        self.lock.release(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn refresh(
        &mut self,
        name: &str,
        key: &str,
        ttl_ms: Option<u64>,
    ) -> Result<pb::RefreshResponse, ApiError> {
        let req = pb::RefreshRequest { name: name.as_bytes().to_vec(), key: key.to_owned(), ttl_ms };
        self.lock.refresh(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn describe(&mut self, name: &str) -> Result<pb::DescribeResponse, ApiError> {
        let req = pb::DescribeRequest { name: name.as_bytes().to_vec() };
        self.lock.describe(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn list(&mut self, prefix: &str, limit: u32, page_token: Vec<u8>) -> Result<pb::ListResponse, ApiError> {
        let req = pb::ListRequest { prefix: prefix.as_bytes().to_vec(), limit, page_token };
        self.lock.list(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn validate_fence(&mut self, name: &str, token: u64) -> Result<pb::ValidateFenceResponse, ApiError> {
        let req = pb::ValidateFenceRequest { name: name.as_bytes().to_vec(), fencing_token: token };
        self.lock.validate_fence(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn force_release(&mut self, name: &str, key: Option<&str>) -> Result<pb::ForceReleaseResponse, ApiError> {
        let req = pb::ForceReleaseRequest { name: name.as_bytes().to_vec(), key: key.unwrap_or_default().to_owned() };
        self.admin.force_release(req).await.map(|r| r.into_inner()).map_err(failed)
    }

    pub async fn status(&mut self) -> Result<pb::StatusResponse, ApiError> {
        self.admin.status(pb::StatusRequest {}).await.map(|r| r.into_inner()).map_err(failed)
    }

    /// The raw gRPC lock client, for calls this wrapper does not cover.
    pub fn raw(&mut self) -> &mut LockClient<Channel> {
        &mut self.lock
    }
}
