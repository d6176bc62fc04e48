//! The [`Client`]: its connections, its view of the cluster, retries, and
//! one method per call of the `Lock` and `Admin` services.
//!
//! Invariants: a call goes to its group's leader when the topology names
//! one, else to the nodes in turn; a `NotLeader` answer that names the
//! leader is remembered; an acquire carries its key from the first attempt.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::options::{AcquireOptions, ClientOptions};
use super::topology::Topology;
use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_client::AdminClient;
use crate::proto::v1::lock_client::LockClient;

/// How long a request keeps retrying transient failures.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// How long a node may take to answer the status a topology refresh asks.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    seeds: Vec<String>,
    /// `Bearer <token>`, sent with every call when the cluster requires it.
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    tls: Option<ClientTlsConfig>,
    topology: RwLock<Topology>,
    channels: DashMap<String, Channel>,
}

fn url(addr: &str, scheme: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("{scheme}://{addr}")
    }
}

fn bad_addr(addr: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, format!("bad address {addr:?}: {e}"))
}

impl Client {
    /// Connects to the node at `addr`; the rest of the cluster is learned
    /// from its status.
    pub async fn connect(addr: &str) -> Result<Self, ApiError> {
        Self::connect_any(&[addr]).await
    }

    /// Connects through the first of `seeds` that answers.
    pub async fn connect_any(seeds: &[&str]) -> Result<Self, ApiError> {
        Self::connect_with(seeds, None).await
    }

    /// Connects through the first of `seeds` that answers, presenting
    /// `token` with every call (for clusters that set `auth.token`).
    pub async fn connect_with(seeds: &[&str], token: Option<&str>) -> Result<Self, ApiError> {
        let opts = ClientOptions { token: token.map(str::to_owned), tls: None };
        Self::connect_opts(seeds, &opts).await
    }

    /// Connects through the first of `seeds` that answers, with `opts`.
    pub async fn connect_opts(seeds: &[&str], opts: &ClientOptions) -> Result<Self, ApiError> {
        let auth = match opts.token.as_deref() {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                ApiError::new(ErrorCode::InvalidArgument, "the token holds characters a header cannot carry")
            })?),
            None => None,
        };
        let inner = Inner {
            auth,
            tls: opts.tls.clone(),
            seeds: seeds.iter().map(|s| s.to_string()).collect(),
            topology: RwLock::new(Topology::default()),
            channels: DashMap::new(),
        };
        let client = Self { inner: Arc::new(inner) };
        client.refresh_topology().await?;
        Ok(client)
    }

    pub(super) fn channel(&self, addr: &str) -> Result<Channel, ApiError> {
        if let Some(ch) = self.inner.channels.get(addr) {
            return Ok(ch.clone());
        }
        let scheme = if self.inner.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(url(addr, scheme)).map_err(|e| bad_addr(addr, e))?;
        if let Some(tls) = &self.inner.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| bad_addr(addr, e))?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_lazy();
        self.inner.channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The first seed address (the node a session is opened on).
    pub(super) fn first_seed(&self) -> String {
        self.inner.seeds.first().cloned().unwrap_or_default()
    }

    pub fn topology(&self) -> Topology {
        self.inner.topology.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reloads the topology from the first node (known or seed) that
    /// answers and is still in the cluster. A removed node's view is not
    /// kept up to date, so its answer is used only when no member answers;
    /// the nodes it names are asked too (it names where to go instead).
    pub async fn refresh_topology(&self) -> Result<(), ApiError> {
        let mut candidates: Vec<String> = self.topology().addrs().map(str::to_owned).collect();
        candidates.extend(self.inner.seeds.iter().cloned());
        let mut last = ApiError::new(ErrorCode::Unavailable, "no node address to connect to");
        let mut fallback = None;
        let mut i = 0;
        while let Some(addr) = candidates.get(i).cloned() {
            i += 1;
            let mut admin = AdminClient::new(self.channel(&addr)?);
            let mut req = self.request(pb::StatusRequest {});
            // A paused node takes the connection but never answers.
            req.set_timeout(STATUS_TIMEOUT);
            match admin.status(req).await.map(|s| s.into_inner()) {
                Ok(status) if status.removed => {
                    for n in &status.nodes {
                        if !candidates.contains(&n.client_addr) {
                            candidates.push(n.client_addr.clone());
                        }
                    }
                    fallback.get_or_insert(status);
                }
                Ok(status) => return Ok(self.set_topology(&status)),
                Err(status) => last = unreachable(&addr, status),
            }
        }
        match fallback {
            Some(status) => Ok(self.set_topology(&status)),
            None => Err(last),
        }
    }

    fn set_topology(&self, status: &pb::StatusResponse) {
        *self.inner.topology.write().unwrap_or_else(|p| p.into_inner()) = Topology::from_status(status);
    }

    /// The address to send a request about `name` to: its leader if known
    /// and trusted, else the nodes in turn.
    pub(super) fn addr_for(&self, name: &str, attempt: u32, to_leader: bool) -> String {
        let topo = self.topology();
        if to_leader {
            if let Some(addr) = topo.leader_addr(name) {
                return addr.to_owned();
            }
        }
        let addrs: Vec<&str> = topo.addrs().chain(self.inner.seeds.iter().map(String::as_str)).collect();
        addrs[attempt as usize % addrs.len().max(1)].to_owned()
    }

    /// Runs `call` against the right node, retrying as the module doc says.
    pub(super) async fn with_retry<T, F, Fut>(&self, name: &str, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut(Channel, u32) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        let (mut attempt, mut to_leader) = (0u32, true);
        loop {
            let addr = self.addr_for(name, attempt, to_leader);
            let err = match call(self.channel(&addr)?, attempt).await {
                Ok(value) => return Ok(value),
                Err(status) => unreachable(&addr, status),
            };
            attempt += 1;
            if !err.row().retryable || Instant::now() >= deadline {
                return Err(err);
            }
            match err.leader.as_deref() {
                Some(leader) if err.code == ErrorCode::NotLeader => {
                    self.inner.topology.write().unwrap_or_else(|p| p.into_inner()).set_leader_addr(name, leader);
                    to_leader = true;
                }
                _ => {
                    to_leader = false;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let _ = self.refresh_topology().await;
                }
            }
        }
    }

    fn lock_client(channel: Channel) -> LockClient<Channel> {
        LockClient::new(channel)
    }

    /// Wraps a message in a request carrying the client's credentials.
    pub(super) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(auth) = &self.inner.auth {
            req.metadata_mut().insert("authorization", auth.clone());
        }
        req
    }

    pub async fn acquire(&self, name: &str, opts: AcquireOptions) -> Result<pb::AcquireResponse, ApiError> {
        // The key is fixed before the first attempt: retries are idempotent.
        let key = opts.key.clone().unwrap_or_else(|| LockKey::from_u128(rand::random()).to_string());
        let req = opts.request(name, key, 0);
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).acquire(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Releases; a retry that finds the key or the lock gone (`NOT_HOLDER`,
    /// `NOT_FOUND`) counts as done: the first attempt released it and only
    /// its answer was lost.
    pub async fn release(&self, name: &str, key: &str) -> Result<pb::ReleaseResponse, ApiError> {
        let req = pb::ReleaseRequest { name: name.as_bytes().to_vec(), key: key.to_owned() };
        self.with_retry(name, |ch, attempt| {
            let req = self.request(req.clone());
            async move {
                match Self::lock_client(ch).release(req).await {
                    Err(status) if attempt > 0 && ApiError::from_status(&status).code.means_not_held() => {
                        Ok(pb::ReleaseResponse { header: None })
                    }
                    other => other.map(|r| r.into_inner()),
                }
            }
        })
        .await
    }

    pub async fn refresh(&self, name: &str, key: &str, ttl_ms: Option<u64>) -> Result<pb::RefreshResponse, ApiError> {
        let req = pb::RefreshRequest { name: name.as_bytes().to_vec(), key: key.to_owned(), ttl_ms };
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).refresh(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Changes (or, with `None`, clears) the value the holder `key` carries.
    pub async fn set_value(
        &self,
        name: &str,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<pb::SetValueResponse, ApiError> {
        let req = pb::SetValueRequest { name: name.as_bytes().to_vec(), key: key.to_owned(), value };
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).set_value(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Turns the exclusive holder `key` of a lock of size 1 shared.
    pub async fn downgrade(&self, name: &str, key: &str) -> Result<pb::DowngradeResponse, ApiError> {
        let req = pb::DowngradeRequest { name: name.as_bytes().to_vec(), key: key.to_owned() };
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).downgrade(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    pub async fn describe(&self, name: &str) -> Result<pb::DescribeResponse, ApiError> {
        let req = pb::DescribeRequest { name: name.as_bytes().to_vec() };
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).describe(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    pub async fn list(&self, prefix: &str, limit: u32, page_token: Vec<u8>) -> Result<pb::ListResponse, ApiError> {
        let req = pb::ListRequest { prefix: prefix.as_bytes().to_vec(), limit, page_token };
        self.with_retry("", |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).list(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    pub async fn validate_fence(&self, name: &str, token: u64) -> Result<pb::ValidateFenceResponse, ApiError> {
        let req = pb::ValidateFenceRequest { name: name.as_bytes().to_vec(), fencing_token: token };
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { Self::lock_client(ch).validate_fence(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    pub async fn force_release(&self, name: &str, key: Option<&str>) -> Result<pb::ForceReleaseResponse, ApiError> {
        let req = pb::ForceReleaseRequest { name: name.as_bytes().to_vec(), key: key.unwrap_or_default().to_owned() };
        self.with_retry(name, |ch, _| {
            let req = self.request(req.clone());
            async move { AdminClient::new(ch).force_release(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Makes node `id` a voter of every group (see `Admin.AddNode`).
    pub async fn add_node(&self, id: u64, client_addr: &str, peer_addr: &str) -> Result<u32, ApiError> {
        let req =
            pb::AddNodeRequest { node_id: id, client_addr: client_addr.to_owned(), peer_addr: peer_addr.to_owned() };
        self.with_retry("", |ch, _| {
            let req = self.request(req.clone());
            async move { AdminClient::new(ch).add_node(req).await.map(|r| r.into_inner().groups) }
        })
        .await
    }

    /// Takes node `id` out of every group's voters (see `Admin.RemoveNode`).
    pub async fn remove_node(&self, id: u64) -> Result<u32, ApiError> {
        let req = pb::RemoveNodeRequest { node_id: id };
        self.with_retry("", |ch, _| {
            let req = self.request(req.clone());
            async move { AdminClient::new(ch).remove_node(req).await.map(|r| r.into_inner().groups) }
        })
        .await
    }

    /// The lock names that queued most often, with how often.
    pub async fn most_contended(&self, limit: u32) -> Result<Vec<(String, u64)>, ApiError> {
        let req = pb::MostContendedRequest { limit };
        let resp = self
            .with_retry("", |ch, _| {
                let req = self.request(req.clone());
                async move { AdminClient::new(ch).most_contended(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(resp.locks.into_iter().map(|l| (String::from_utf8_lossy(&l.name).into_owned(), l.queued)).collect())
    }

    /// The status of the first seed node (or, failing that, any node).
    pub async fn status(&self) -> Result<pb::StatusResponse, ApiError> {
        let addr = self.first_seed();
        AdminClient::new(self.channel(&addr)?)
            .status(self.request(pb::StatusRequest {}))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| unreachable(&addr, s))
    }
}

/// Reads an error from a status; a transport failure says which node.
pub(super) fn unreachable(addr: &str, status: tonic::Status) -> ApiError {
    let mut err = ApiError::from_status(&status);
    if status.metadata().get(crate::error::CODE_METADATA).is_none() && err.code == ErrorCode::Unavailable {
        err.message = format!("node {addr} is unreachable ({}): is it running?", status.message());
    }
    err
}
