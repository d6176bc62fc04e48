//! The node's one WAL syncer: group commit for every Raft group.
//!
//! Log appends of all groups are written to RocksDB unsynced, on the caller
//! (so they are readable at once, as openraft's `append` contract wants),
//! then handed here with a completion callback. This thread waits for work,
//! takes everything queued, syncs the WAL once (`FlushWAL(sync)`) and fires
//! every callback. One fsync thus covers every group's appends that arrived
//! while the previous fsync ran.
//!
//! Invariants: a callback fires only after a WAL sync that began after its
//! write (RocksDB's WAL is sequential, so the sync covers the write); a sync
//! error is passed to every waiting callback; in `unsafe_no_fsync` mode the
//! callbacks fire at once. The thread exits when every sender is dropped.
//! For fault-injection tests only, a delay before each sync makes the disk
//! look slow (`storage.test_only_sync_delay_ms`).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Db;

/// Called once the write it follows is durable (or failed to become so).
pub type Done = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

/// Handle to the syncer thread; cheap to clone. When the last handle is
/// dropped the thread is told to stop and joined, so it never outlives its
/// users (a RocksDB handle closing during process exit crashes the process).
#[derive(Clone)]
pub struct Syncer {
    inner: std::sync::Arc<Inner>,
    stats: std::sync::Arc<Stats>,
}

struct Inner {
    tx: Option<mpsc::Sender<Done>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counters read by metrics and benchmarks.
#[derive(Default)]
pub struct Stats {
    pub syncs: std::sync::atomic::AtomicU64,
    pub synced_writes: std::sync::atomic::AtomicU64,
    pub sync_micros: std::sync::atomic::AtomicU64,
}

impl Syncer {
    /// Starts the syncer for `db`. With `fsync` false it syncs nothing.
    pub fn start(db: Db, fsync: bool) -> std::io::Result<Self> {
        Self::start_slowed(db, fsync, Duration::ZERO)
    }

    /// Like `start`, sleeping `delay` before every sync: a slow disk, for
    /// fault-injection tests only.
    pub fn start_slowed(db: Db, fsync: bool, delay: Duration) -> std::io::Result<Self> {
        let stats = std::sync::Arc::new(Stats::default());
        if !fsync {
            let inner = std::sync::Arc::new(Inner { tx: None, thread: None });
            return Ok(Self { inner, stats });
        }
        let (tx, rx) = mpsc::channel::<Done>();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("shardlock-wal-sync".into())
            .spawn(move || run(db, rx, &thread_stats, delay))?;
        let inner = std::sync::Arc::new(Inner { tx: Some(tx), thread: Some(thread) });
        Ok(Self { inner, stats })
    }

    /// Fires `done` once everything written before this call is durable.
    pub fn after_sync(&self, done: Done) {
        match &self.inner.tx {
            None => done(Ok(())),
            Some(tx) => {
                if let Err(mpsc::SendError(done)) = tx.send(done) {
                    done(Err(std::io::Error::other("the wal syncer has stopped: the node is shutting down")));
                }
            }
        }
    }

    /// Waits until everything written before this call is durable.
    pub async fn sync(&self) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_sync(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        rx.await.map_err(|_| std::io::Error::other("the wal syncer dropped a request"))?
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

fn run(db: Db, rx: mpsc::Receiver<Done>, stats: &Stats, delay: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let syncing = Instant::now();
        let result = db.raw().flush_wal(true).map_err(|e| e.to_string());
        crate::metrics::stage(crate::metrics::Stage::Fsync, syncing.elapsed());
        stats.syncs.fetch_add(1, Relaxed);
        stats.synced_writes.fetch_add(batch.len() as u64, Relaxed);
        stats.sync_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        metrics::histogram!(crate::metrics::WAL_SYNC_DURATION).record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::metrics::WAL_SYNC_BATCH).record(batch.len() as f64);
        for done in batch {
            done(result.clone().map_err(std::io::Error::other));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::CF_LOG;

    #[tokio::test]
    async fn many_writers_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), false).unwrap();
        let syncer = Syncer::start(db.clone(), true).unwrap();
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let (db, syncer) = (db.clone(), syncer.clone());
            tasks.push(tokio::spawn(async move {
                let mut batch = rocksdb::WriteBatch::default();
                batch.put_cf(db.cf(CF_LOG).unwrap(), i.to_be_bytes(), b"x");
                db.write_buffered(batch).unwrap();
                syncer.sync().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stats = syncer.stats();
        let syncs = stats.syncs.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(stats.synced_writes.load(std::sync::atomic::Ordering::Relaxed), 64);
        assert!((1..=64).contains(&syncs));
    }
}
