//! The node's one WAL syncer: group commit for every Raft group.
//!
//! Log writes of all groups are handed here as RocksDB write batches with a
//! completion callback (the log store keeps appended entries readable from
//! its cache meanwhile, as openraft's `append` contract wants). This thread
//! waits for work, takes everything queued, writes it in the order it came
//! (unsynced, into the WAL buffer and the memtable), syncs the WAL once
//! (`FlushWAL(sync)`) and fires every callback. One fsync thus covers every
//! group's appends that arrived while the previous fsync ran, and the
//! RocksDB writes (memtable inserts: 8% of a node's CPU at 64 clients) run
//! here, not on the runtime that serves clients. Under load it also lingers, briefly and only
//! while appends keep arriving ([`Linger`]); after a run of syncs of single
//! writes it never does, so one client never waits for company.
//!
//! Invariants: writes are made in the order they were handed over, so a
//! truncation or purge never lands before an append queued ahead of it; a
//! callback fires only after its write and a WAL sync that began after it
//! (RocksDB's WAL is sequential, so the sync covers the write); a write or
//! sync error is passed to every callback of that round and of every round
//! after it, and nothing is written after it ([`Failure`]); in
//! `unsafe_no_fsync` mode writes are made on the caller and callbacks fire
//! at once. The thread exits when every sender is dropped.
//! For fault-injection tests only, a delay before each sync makes the disk
//! look slow (`crate::faults::SlowDisk`).

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rocksdb::WriteBatch;

use super::Db;
use crate::faults::SlowDisk;

/// How many runtime workers run a node's tasks (0: unknown, the node's
/// runtime was not built by [`crate::node::runtime`]), and how many of them
/// are parked: idle, with nothing left to run.
static WORKERS: AtomicUsize = AtomicUsize::new(0);
static PARKED: AtomicUsize = AtomicUsize::new(0);
/// The syncer thread, while it waits for the runtime to go idle.
static WAITING: std::sync::Mutex<Option<std::thread::Thread>> = std::sync::Mutex::new(None);

/// Registers the runtime's worker count; its park hooks report to
/// [`worker_parked`].
pub fn runtime_workers(workers: usize) {
    WORKERS.store(workers, Relaxed);
}

/// A runtime worker parked (`true`: it has nothing left to run) or woke.
pub fn worker_parked(parked: bool) {
    if parked {
        if PARKED.fetch_add(1, Relaxed) + 1 >= WORKERS.load(Relaxed) {
            if let Some(syncer) = WAITING.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                syncer.unpark();
            }
        }
    } else {
        let _ = PARKED.fetch_update(Relaxed, Relaxed, |p| p.checked_sub(1));
    }
}

/// Whether every runtime worker is parked: the node has run everything it
/// could, so no more appends are coming for now. Always true when the
/// runtime's workers are unknown (tests start nodes on their own runtimes).
fn runtime_idle() -> bool {
    let workers = WORKERS.load(Relaxed);
    workers == 0 || PARKED.load(Relaxed) >= workers
}

/// Called once the write it follows is durable (or failed to become so).
pub type Done = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

/// What the syncer thread is handed: a write to make first, if any, and
/// what to call once it is durable.
struct Request {
    write: Option<WriteBatch>,
    done: Done,
}

/// Handle to the syncer thread; cheap to clone. When the last handle is
/// dropped the thread is told to stop and joined, so it never outlives its
/// users (a RocksDB handle closing during process exit crashes the process).
#[derive(Clone)]
pub struct Syncer {
    /// Where writes go when no thread syncs (`unsafe_no_fsync`).
    db: Db,
    inner: std::sync::Arc<Inner>,
    stats: std::sync::Arc<Stats>,
}

struct Inner {
    tx: Option<mpsc::Sender<Request>>,
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
    #[cfg(test)]
    pub fn start(db: Db, fsync: bool) -> std::io::Result<Self> {
        Self::start_slowed(db, fsync, SlowDisk::default())
    }

    /// Like `start`, sleeping before every sync as `slow` says: a slow
    /// disk, for fault-injection tests only.
    pub fn start_slowed(db: Db, fsync: bool, slow: SlowDisk) -> std::io::Result<Self> {
        let stats = std::sync::Arc::new(Stats::default());
        if !fsync {
            let inner = std::sync::Arc::new(Inner { tx: None, thread: None });
            return Ok(Self { db, inner, stats });
        }
        let (tx, rx) = mpsc::channel::<Request>();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new().name("shardlock-wal-sync".into()).spawn({
            let db = db.clone();
            move || run(db, rx, &thread_stats, &slow)
        })?;
        let inner = std::sync::Arc::new(Inner { tx: Some(tx), thread: Some(thread) });
        Ok(Self { db, inner, stats })
    }

    /// Fires `done` once everything handed over before this call is
    /// written and durable.
    pub fn after_sync(&self, done: Done) {
        self.hand(Request { write: None, done });
    }

    /// Writes `batch` after everything handed over before it, then fires
    /// `done` once it is durable.
    pub fn write_then(&self, batch: WriteBatch, done: Done) {
        self.hand(Request { write: Some(batch), done });
    }

    fn hand(&self, request: Request) {
        let Some(tx) = &self.inner.tx else {
            let written = request.write.map_or(Ok(()), |batch| self.db.write_buffered(batch));
            return (request.done)(written.map_err(std::io::Error::other));
        };
        if let Err(mpsc::SendError(request)) = tx.send(request) {
            (request.done)(Err(std::io::Error::other("the wal syncer has stopped: the node is shutting down")));
        }
    }

    /// Waits until everything handed over before this call is written and
    /// durable.
    pub async fn sync(&self) -> std::io::Result<()> {
        self.wait(|done| self.after_sync(done)).await
    }

    /// Writes `batch` after everything handed over before it and waits
    /// until it is durable.
    pub async fn write_durable(&self, batch: WriteBatch) -> std::io::Result<()> {
        self.wait(|done| self.write_then(batch, done)).await
    }

    async fn wait(&self, hand: impl FnOnce(Done)) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        hand(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        rx.await.map_err(|_| std::io::Error::other("the wal syncer dropped a request"))?
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// When the syncer may wait for more appends before it syncs.
///
/// Group commit that waits for the node to finish what it is doing: while
/// the node's runtime is busy (its tasks are running: answering the last
/// sync's writes, reading requests, proposing), more appends are on their
/// way, so the sync waits until the runtime parks (its park hook wakes
/// this thread) or the budget runs out — Redis's event loop, which syncs once it has
/// processed every ready client. The budget is half the last sync's
/// duration (a sync that takes longer is worth sharing more), never past
/// `MAX`. The syncer lingers only if one of the last [`Linger::MEMORY`]
/// syncs covered more than one write: one client (every sync a single
/// write) never waits, while a loaded node whose groups fell out of step
/// (one sync of a single write among shared ones) keeps gathering them.
/// Measured (`loadtest/ab.sh`, both orders, bench/RESULTS.md): with the
/// last sync alone deciding, 16 clients on 4 groups settled in one of two
/// modes, ~0.2 fsyncs a cycle or ~0.3 with fewer cycles/s and a p99 of
/// 8-16 ms; with the last four, 0.13-0.18 in 6 runs of 6, p99 3.4-4.6 ms,
/// and +5%, +9%, +5% cycles/s and 17%, 9%, 6% less CPU a cycle at
/// 16, 64 and 256 clients.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Linger {
    /// One bit per recent sync, newest lowest: it covered more than one write.
    shared: u8,
    /// How long the previous sync took.
    last_sync: Duration,
}

impl Linger {
    const MIN: Duration = Duration::from_micros(50);
    const MAX: Duration = Duration::from_micros(500);
    /// How many recent syncs decide whether to linger.
    const MEMORY: u32 = 4;

    /// The state after a sync of `writes` writes that took `took`.
    pub fn after(self, writes: usize, took: Duration) -> Self {
        let shared = ((self.shared << 1) | u8::from(writes > 1)) & ((1 << Self::MEMORY) - 1);
        Self { shared, last_sync: took }
    }

    /// Whether this sync may wait for more appends at all.
    pub fn lingers(&self) -> bool {
        self.shared != 0
    }

    /// The longest this sync may wait for more appends in all.
    pub fn budget(&self) -> Duration {
        if !self.lingers() {
            return Self::MIN;
        }
        (self.last_sync / 2).clamp(Self::MIN, Self::MAX)
    }
}

/// Takes what is queued after `first`, lingering as [`Linger`] allows.
fn gather(first: Request, rx: &mpsc::Receiver<Request>, linger: Linger) -> Vec<Request> {
    let mut batch = vec![first];
    batch.extend(rx.try_iter());
    let until = Instant::now() + linger.budget();
    // Syncs of one write (one client, a quiet node) are not followed by a
    // wait: waking this thread twice would cost that client more than a wait saves.
    while linger.lingers() && !runtime_idle() {
        let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else { break };
        // The runtime's park hook wakes this thread as soon as it idles.
        *WAITING.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current());
        if !runtime_idle() {
            std::thread::park_timeout(left);
        }
        *WAITING.lock().unwrap_or_else(|p| p.into_inner()) = None;
        batch.extend(rx.try_iter());
    }
    batch
}

/// Makes the round's writes in order, then syncs them: how long the sync
/// took, or the first error.
fn write_and_sync(db: &Db, round: &mut [Request]) -> Result<Duration, String> {
    for request in round.iter_mut() {
        if let Some(batch) = request.write.take() {
            db.write_buffered(batch).map_err(|e| e.to_string())?;
        }
    }
    let syncing = Instant::now();
    db.raw().flush_wal(true).map_err(|e| e.to_string())?;
    Ok(syncing.elapsed())
}

/// The first failed write or sync, kept. Nothing is written after it: a
/// later round's writes would leave a hole in a group's log (a batch of the
/// failed round was skipped), and a retried fsync may succeed without the
/// data the failed one lost. Every request from then on gets the error;
/// openraft stops the groups, and the node has to be restarted.
#[derive(Default)]
struct Failure(Option<String>);

impl Failure {
    /// Runs `round` unless an earlier one failed; the first error sticks.
    fn guard<T>(&mut self, round: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        if let Some(err) = &self.0 {
            return Err(err.clone());
        }
        let result = round();
        if let Err(err) = &result {
            self.0 = Some(format!("the wal failed ({err}); nothing is written after it: restart the node"));
        }
        result
    }
}

fn run(db: Db, rx: mpsc::Receiver<Request>, stats: &Stats, slow: &SlowDisk) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut linger = Linger::default();
    let mut failure = Failure::default();
    // Registered at the first sync, not here: the node starts this thread
    // before it installs the metrics recorder.
    let mut histograms = None;
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let delay = slow.now();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut batch = gather(first, &rx, linger);
        let result = failure.guard(|| write_and_sync(&db, &mut batch));
        if let Ok(took) = result {
            linger = linger.after(batch.len(), took);
            crate::metrics::stage(crate::metrics::Stage::Fsync, took);
        }
        let result = result.map(|_| ());
        stats.syncs.fetch_add(1, Relaxed);
        stats.synced_writes.fetch_add(batch.len() as u64, Relaxed);
        stats.sync_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        let (durations, sizes) = histograms.get_or_insert_with(|| {
            let name = |n: &'static str| metrics::histogram!(n);
            (name(crate::metrics::WAL_SYNC_DURATION), name(crate::metrics::WAL_SYNC_BATCH))
        });
        durations.record(started.elapsed().as_secs_f64());
        sizes.record(batch.len() as f64);
        for request in batch {
            (request.done)(result.clone().map_err(std::io::Error::other));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::CF_LOG;

    /// The state after syncs of these many writes, each taking `took`.
    fn after(writes: &[usize], took: Duration) -> Linger {
        writes.iter().fold(Linger::default(), |l, &n| l.after(n, took))
    }

    #[test]
    fn lingering_only_under_load_and_bounded() {
        let (ms, us) = (Duration::from_millis, Duration::from_micros);
        let cases = [
            (Linger::default(), us(50), "first sync"),
            (after(&[1, 1, 1], ms(5)), us(50), "one client waits the least"),
            (after(&[2], us(400)), us(200), "a half"),
            (after(&[9], ms(10)), us(500), "never past the max"),
        ];
        for (linger, want, what) in cases {
            assert_eq!(linger.budget(), want, "{what}");
        }
    }

    #[test]
    fn a_single_write_among_shared_syncs_does_not_stop_lingering() {
        let took = Duration::from_micros(300);
        assert!(!after(&[1, 1, 1, 1], took).lingers(), "one client: never");
        assert!(after(&[3, 1], took).lingers(), "groups out of step for a sync");
        assert!(after(&[3, 1, 1, 1], took).lingers(), "the shared sync is still recent");
        assert!(!after(&[3, 1, 1, 1, 1], took).lingers(), "the load is gone");
        assert!(after(&[1, 1, 1, 1, 2], took).lingers(), "the load is back");
    }

    #[test]
    fn gathering_stops_at_the_first_empty_step() {
        let (tx, rx) = mpsc::channel::<Request>();
        let noop = || Request { write: None, done: Box::new(|_| {}) };
        tx.send(noop()).unwrap();
        tx.send(noop()).unwrap();
        let linger = after(&[5], Duration::from_millis(10));
        assert_eq!(gather(noop(), &rx, linger).len(), 3, "the queued two join the first");
        let idle = after(&[1, 1, 1, 1], Duration::from_millis(10));
        assert_eq!(gather(noop(), &rx, idle).len(), 1);
    }

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
                syncer.write_durable(batch).await
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

    #[test]
    fn after_a_failure_nothing_more_is_written() {
        let mut failure = Failure::default();
        assert_eq!(failure.guard(|| Ok::<_, String>(1)), Ok(1));
        assert!(failure.guard(|| Err::<u32, _>("disk full".to_string())).is_err());
        let mut ran = false;
        let later = failure.guard(|| {
            ran = true;
            Ok(2)
        });
        assert!(!ran, "a round after the failure is not run");
        let err = later.unwrap_err();
        assert!(err.contains("disk full") && err.contains("restart the node"), "{err}");
    }

    #[tokio::test]
    async fn writes_land_in_the_order_they_were_handed_over() {
        for fsync in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(dir.path(), fsync).unwrap();
            let syncer = Syncer::start(db.clone(), fsync).unwrap();
            let cf = db.cf(CF_LOG).unwrap();
            let (mut put, mut delete, mut other) =
                (WriteBatch::default(), WriteBatch::default(), WriteBatch::default());
            put.put_cf(cf, b"k", b"v");
            delete.delete_cf(cf, b"k");
            other.put_cf(cf, b"j", b"w");
            syncer.write_then(put, Box::new(|r| r.unwrap()));
            syncer.write_then(delete, Box::new(|r| r.unwrap()));
            syncer.write_durable(other).await.unwrap();
            assert_eq!(db.raw().get_cf(cf, b"k").unwrap(), None, "fsync {fsync}: the delete landed after the put");
            assert_eq!(db.raw().get_cf(cf, b"j").unwrap().as_deref(), Some(&b"w"[..]), "fsync {fsync}");
        }
    }
}
