//! A held lock that keeps its lease alive.
//!
//! Invariants: while the guard lives, a background task refreshes the lease
//! every third of its TTL; the guard reports the lock lost — through
//! [`LockGuard::lost`] — as soon as a refresh answers `NOT_HOLDER` (expired
//! or force-released) or no refresh succeeded for a whole TTL (the lease may
//! have run out: the owner must stop using the resource); dropping the guard
//! stops refreshing and releases in the background; nothing here panics.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::options::AcquireOptions;
use super::rpc::Client;
use crate::error::{ApiError, ErrorCode};
use crate::proto::v1::AcquireResponse;

pub struct LockGuard {
    client: Client,
    name: String,
    grant: AcquireResponse,
    lost: watch::Receiver<Option<String>>,
    refresher: Option<JoinHandle<()>>,
    released: bool,
}

impl Client {
    /// Acquires and returns a guard that refreshes the lease until dropped.
    pub async fn lock(&self, name: &str, opts: AcquireOptions) -> Result<LockGuard, ApiError> {
        let grant = self.acquire(name, opts).await?;
        Ok(LockGuard::start(self.clone(), name, grant))
    }
}

impl LockGuard {
    pub(super) fn start(client: Client, name: &str, grant: AcquireResponse) -> Self {
        let (tx, lost) = watch::channel(None);
        let task = refresh_loop(client.clone(), name.to_owned(), grant.key.clone(), grant.ttl_ms, tx);
        let refresher = Some(tokio::spawn(task));
        Self { client, name: name.to_owned(), grant, lost, refresher, released: false }
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> &str {
        &self.grant.key
    }

    /// The first fencing token of the grant (a grant of k permits owns k).
    pub fn fencing_token(&self) -> u64 {
        self.grant.fencing_token
    }

    pub fn permits(&self) -> u32 {
        self.grant.permits
    }

    pub fn ttl_ms(&self) -> u64 {
        self.grant.ttl_ms
    }

    /// Why the lock was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Resolves with the reason once the lock is lost (never, while held).
    pub async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            if let Some(reason) = rx.borrow().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "the lease refresher stopped".into();
            }
        }
    }

    /// Releases now and waits for the answer.
    pub async fn release(mut self) -> Result<(), ApiError> {
        self.stop_refreshing();
        self.released = true;
        self.client.release(&self.name, &self.grant.key).await.map(|_| ())
    }

    fn stop_refreshing(&mut self) {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop_refreshing();
        if self.released || self.lost.borrow().is_some() {
            return;
        }
        let (client, name, key) = (self.client.clone(), self.name.clone(), self.grant.key.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = client.release(&name, &key).await;
            });
        }
    }
}

async fn refresh_loop(client: Client, name: String, key: String, ttl_ms: u64, lost: watch::Sender<Option<String>>) {
    let ttl = Duration::from_millis(ttl_ms.max(1));
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let refreshed = tokio::time::timeout(ttl / 3, client.refresh(&name, &key, None)).await;
        let refreshed = refreshed.unwrap_or_else(|_| Err(ApiError::new(ErrorCode::Unavailable, "refresh timed out")));
        match refreshed {
            Ok(_) => last_ok = Instant::now(),
            Err(err) if err.code.means_not_held() => {
                let _ = lost.send(Some(format!("lock lost: {}", err.message)));
                return;
            }
            Err(err) if last_ok.elapsed() >= ttl => {
                let reason = format!("no refresh succeeded within the lease ttl ({ttl_ms} ms): {}", err.message);
                let _ = lost.send(Some(reason));
                return;
            }
            Err(_) => {}
        }
    }
}
