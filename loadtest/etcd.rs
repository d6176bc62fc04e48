//! The etcd driver: the same workloads through etcd's native lock API
//! (v3lock `Lock`/`Unlock` under a lease kept alive, as etcd's concurrency
//! mutex does; linearizable `Range` reads), for side-by-side comparison.

use std::time::Duration;

use shardlock::proto::etcd::etcdserverpb::kv_client::KvClient;
use shardlock::proto::etcd::etcdserverpb::lease_client::LeaseClient;
use shardlock::proto::etcd::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, RangeRequest};
use shardlock::proto::etcd::v3lockpb::lock_client::LockClient;
use shardlock::proto::etcd::v3lockpb::{LockRequest, UnlockRequest};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub struct Etcd {
    lock: LockClient<Channel>,
    kv: KvClient<Channel>,
    lease: i64,
    keepalive: JoinHandle<()>,
}

impl Etcd {
    /// Connects and grants the client's session lease (TTL in seconds).
    pub async fn connect(addr: &str, ttl_s: i64) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
        let mut leases = LeaseClient::new(channel.clone());
        let lease = leases.lease_grant(LeaseGrantRequest { ttl: ttl_s, id: 0 }).await?.into_inner().id;
        let keepalive = tokio::spawn(async move {
            let every = Duration::from_secs((ttl_s as u64 / 3).max(1));
            let stream = async_stream(lease, every);
            let _ = leases.lease_keep_alive(stream).await.map(|r| r.into_inner());
            std::future::pending::<()>().await;
        });
        Ok(Self { lock: LockClient::new(channel.clone()), kv: KvClient::new(channel), lease, keepalive })
    }

    /// Blocks until the lock `name` is held; returns its key.
    pub async fn lock(&mut self, name: &str) -> anyhow::Result<Vec<u8>> {
        let req = LockRequest { name: name.as_bytes().to_vec(), lease: self.lease };
        Ok(self.lock.lock(req).await?.into_inner().key)
    }

    pub async fn unlock(&mut self, key: Vec<u8>) -> anyhow::Result<()> {
        self.lock.unlock(UnlockRequest { key }).await?;
        Ok(())
    }

    /// A linearizable read of `key` (etcd's default consistency).
    pub async fn get(&mut self, key: &[u8]) -> anyhow::Result<bool> {
        let req = RangeRequest { key: key.to_vec(), ..Default::default() };
        Ok(!self.kv.range(req).await?.into_inner().kvs.is_empty())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

/// A stream of keepalives for `lease`, one every `every`.
fn async_stream(lease: i64, every: Duration) -> impl futures::Stream<Item = LeaseKeepAliveRequest> {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(every).await;
        Some((LeaseKeepAliveRequest { id: lease }, ()))
    })
}
