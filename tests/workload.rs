//! The clients of the fault-injection runs: workers that take a mutex and a
//! semaphore in turn, work a moment under each grant, release it, and record
//! what they observed for the checker.
//!
//! Invariants: a hold is recorded only for an acquire that succeeded, with
//! the instants the client saw (sent, answer, release sent — whatever the
//! release answered: a client that asked to let go cannot count on holding
//! any longer; failed releases are kept apart, with their error); writes to the
//! fenced resource happen under the mutex only; every success is timestamped
//! so the run can measure how long no client got anywhere; the workers stop
//! and are joined by [`Workload::stop`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardlock::client::{AcquireOptions, Client};
use tokio::task::JoinHandle;

use crate::checker::{FencedResource, Hold};

/// Lease of every grant the workers take.
pub const TTL: Duration = Duration::from_millis(3000);
/// The locks the workers contend on, with their sizes.
pub const LOCKS: [(&str, u32); 2] = [("chaos/mutex", 1), ("chaos/sem", 2)];

#[derive(Default)]
pub struct Record {
    pub history: Vec<Hold>,
    pub resource: FencedResource,
    /// When each acquire+release cycle (or probe) completed.
    pub successes: Vec<Instant>,
    /// Releases that answered an error: (lock, token, error).
    pub failed_releases: Vec<(String, u64, String)>,
}

pub struct Workload {
    pub record: Arc<Mutex<Record>>,
    pub errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Lets `d` pass: the length of a fault, or of the work done under a lock
/// (the duration is the point here, not a wait for some state).
pub async fn keep_fault_for(d: Duration) {
    tokio::time::sleep_until(tokio::time::Instant::now() + d).await;
}

impl Workload {
    /// Starts `n` workers sharing `client`.
    pub fn start(client: &Client, n: usize) -> Self {
        let (stop, errors) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let record = Arc::new(Mutex::new(Record::default()));
        let workers = (0..n)
            .map(|id| tokio::spawn(worker(client.clone(), id, stop.clone(), record.clone(), errors.clone())))
            .collect();
        Self { record, errors, stop, workers }
    }

    /// Cycles completed so far.
    pub fn done(&self) -> usize {
        self.record.lock().unwrap().successes.len()
    }

    /// A check for `wait_for`: at least `n` cycles completed.
    pub fn progress(&self, n: usize) -> impl FnMut() -> std::future::Ready<Option<()>> + '_ {
        move || std::future::ready((self.done() >= n).then_some(()))
    }

    /// Acquires `lock` once with a wait of `wait`, records the hold, and
    /// releases it; returns how long the grant took, or the error.
    pub async fn probe(&self, client: &Client, lock: &str, size: u32, wait: Duration) -> Result<Duration, String> {
        let sent = Instant::now();
        let opts = AcquireOptions {
            size: Some(size),
            ttl_ms: Some(TTL.as_millis() as u64),
            wait_ms: wait.as_millis() as u64,
            ..Default::default()
        };
        let grant = client.acquire(lock, opts).await.map_err(|e| e.to_string())?;
        let granted = Instant::now();
        if size == 1 {
            self.record.lock().unwrap().resource.write(lock, grant.fencing_token);
        }
        let release_sent = Instant::now();
        if let Err(e) = client.release(lock, &grant.key).await {
            let why = format!("{:?}: {}", e.code, e.message);
            self.record.lock().unwrap().failed_releases.push((lock.into(), grant.fencing_token, why));
        }
        let released = Some(release_sent);
        let hold = Hold {
            lock: lock.into(),
            size,
            client: usize::MAX,
            token: grant.fencing_token,
            sent,
            granted,
            released,
            ttl: TTL,
        };
        let mut r = self.record.lock().unwrap();
        r.history.push(hold);
        r.successes.push(Instant::now());
        Ok(granted - sent)
    }

    /// Stops the workers and waits for them to finish their cycles.
    pub async fn stop(self) -> (Arc<Mutex<Record>>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        (self.record, self.errors.load(Ordering::Relaxed))
    }
}

async fn worker(client: Client, id: usize, stop: Arc<AtomicBool>, record: Arc<Mutex<Record>>, errors: Arc<AtomicU64>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (lock, size) = LOCKS[(id + n) % LOCKS.len()];
        let sent = Instant::now();
        let opts = AcquireOptions {
            size: Some(size),
            ttl_ms: Some(TTL.as_millis() as u64),
            wait_ms: 20_000,
            ..Default::default()
        };
        let grant = match client.acquire(lock, opts).await {
            Ok(g) => g,
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let granted = Instant::now();
        if size == 1 {
            // The mutex guards a resource that accepts only increasing tokens.
            record.lock().unwrap().resource.write(lock, grant.fencing_token);
        }
        // The work done under the lock: long enough for holders to overlap
        // if the service ever admitted too many.
        keep_fault_for(Duration::from_millis(15)).await;
        let release_sent = Instant::now();
        if let Err(e) = client.release(lock, &grant.key).await {
            let why = format!("{:?}: {}", e.code, e.message);
            record.lock().unwrap().failed_releases.push((lock.into(), grant.fencing_token, why));
        }
        let released = Some(release_sent);
        let mut r = record.lock().unwrap();
        r.history.push(Hold {
            lock: lock.into(),
            size,
            client: id,
            token: grant.fencing_token,
            sent,
            granted,
            released,
            ttl: TTL,
        });
        r.successes.push(Instant::now());
    }
}
