//! A node's wiring: it starts storage, the Raft groups, the request path,
//! the upkeep and cluster loops and both ports, in that order, and stops
//! them on shutdown. It sits above everything it starts.
//!
//! - this module: [`Node`]: start, drain, shutdown;
//! - [`peer_port`]: the peer port's handler (Raft messages, forwarded work).
//!
//! Invariants: a node refuses to start on a data directory of another node
//! or another group count; the peer and client servers take their listeners
//! from the caller (tests bind ephemeral ports) and stop on the node's
//! shutdown signal, and so do the loops; shutdown is bounded in time even
//! if a client keeps a connection open.

mod peer_port;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::faults::SlowDisk;
use crate::raft::groups::GroupsError;
use crate::raft::{bootstrap, liveness, quiesce, Cluster, Groups, NodeId};
use crate::service::effects::EffectSink;
use crate::service::forward::call::announce;
use crate::service::waits::Waits;
use crate::service::watch::History;
use crate::service::{LockService, Parts};
use crate::storage::identity::{self, IdentityError};
use crate::storage::syncer::Syncer;
use crate::storage::{Db, StorageError};
use crate::upkeep::keeper::Keeper;
use crate::upkeep::sessions::Sessions;
use crate::upkeep::Propose;

/// The runtime a node runs on: `threads` workers (1: one thread, which
/// runs every task; 0: one per core). Its workers tell the WAL syncer when
/// they park, so a sync waits for the node to finish what it is doing
/// (see `storage::syncer`).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let workers = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if threads != 1 {
        builder.worker_threads(workers);
    }
    let runtime = builder
        .enable_all()
        .on_thread_park(|| crate::storage::syncer::worker_parked(true))
        .on_thread_unpark(|| crate::storage::syncer::worker_parked(false))
        .build()?;
    crate::storage::syncer::runtime_workers(workers);
    Ok(runtime)
}

/// How long shutdown waits for a server or loop before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot open the database: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Groups(#[from] GroupsError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

pub struct Node {
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    cluster: Arc<Cluster>,
    service: Arc<LockService>,
    syncer: Syncer,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    heartbeat: Duration,
}

/// What a drain did.
#[derive(Clone, Debug)]
pub struct DrainReport {
    /// Groups this node led when the drain began.
    pub led: usize,
    /// Groups it still led when the drain ended (0 unless no peer was healthy).
    pub still_leading: usize,
    pub took: Duration,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

impl Node {
    /// Starts a node listening on the configured addresses.
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        let client = TcpListener::bind(&config.client_addr)
            .await
            .map_err(io(format!("cannot listen on {}", config.client_addr)))?;
        let peer =
            TcpListener::bind(&config.peer_addr).await.map_err(io(format!("cannot listen on {}", config.peer_addr)))?;
        Self::start_with(config, client, peer).await
    }

    /// Starts a node on listeners the caller already bound.
    pub async fn start_with(config: Config, client: TcpListener, peer: TcpListener) -> Result<Self, NodeError> {
        config.validate()?;
        let config = Arc::new(config);
        identity::ensure(&config.data_dir, config.node_id, config.groups)?;
        let (db, syncer) = open_storage(&config)?;
        crate::metrics::install();
        let (waits, keeper) =
            (Arc::new(Waits::default()), Arc::new(Keeper::new(config.groups, config.idle_lock_grace_ms)));
        let contention = Arc::new(crate::metrics::Contention::new(10_000));
        let history = Arc::new(History::new(config.groups, config.watch_history));
        let sink = Arc::new(EffectSink {
            waits: waits.clone(),
            keeper: keeper.clone(),
            contention: contention.clone(),
            history: history.clone(),
        });
        let cluster = Arc::new(Cluster::start(&config, db, syncer.clone(), sink).await?);
        let sessions = Arc::new(Sessions::new(config.max_sessions));
        let service = LockService::new(Parts {
            cluster: cluster.clone(),
            config: config.clone(),
            waits,
            keeper: keeper.clone(),
            sessions: sessions.clone(),
            contention,
            history,
            syncer: syncer.clone(),
        });
        let (shutdown, rx) = watch::channel(false);
        let client_addr = client.local_addr().map_err(io("client listener"))?;
        let peer_addr = peer.local_addr().map_err(io("peer listener"))?;
        let (peer_tls, client_tls) = (crate::tls::peer_server(&config.tls)?, crate::tls::client_port(&config.tls)?);
        let mut tasks = vec![
            tokio::spawn(peer_port::serve(peer, service.clone(), peer_tls, stopped(rx.clone()))),
            tokio::spawn(crate::api::serve_client(client, service.clone(), client_tls, stopped(rx.clone()))),
        ];
        if config.bootstrap {
            bootstrap::bootstrap(&cluster).await?;
        }
        let propose: Arc<dyn Propose> = service.clone();
        tasks.extend(spawn_loops(&config, &cluster, keeper, sessions, propose, rx));
        let peers: Vec<_> = config.voters().iter().map(|p| p.id).filter(|id| *id != config.node_id).collect();
        tokio::spawn(announce_all(cluster.clone(), peers, false));
        tracing::info!(node = config.node_id, %client_addr, %peer_addr, groups = config.groups, "node started");
        let heartbeat = Duration::from_millis(config.raft.heartbeat_interval_ms);
        Ok(Self { client_addr, peer_addr, cluster, service, syncer, shutdown, tasks, heartbeat })
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The node's Raft groups (tests wait on their state: `testing::Probe`).
    pub(crate) fn groups(&self) -> &Arc<Groups> {
        self.cluster.groups()
    }

    /// Drains the node: refuses new requests, answers its waiters with a
    /// retryable `DRAINING`, tells peers not to hand it leadership, and moves
    /// the leadership of every group it leads to a healthy peer, for at most
    /// `timeout`. Call `shutdown` afterwards.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let started = Instant::now();
        self.service.start_draining();
        let mut peers: Vec<_> = self.cluster.nodes().nodes.keys().copied().collect();
        peers.retain(|p| *p != self.cluster.me());
        announce_all(self.cluster.clone(), peers, true).await;
        let groups = self.cluster.groups();
        let led_by_me = || (0..groups.count()).filter(|g| groups.view(*g).is_leader).collect::<Vec<_>>();
        let led = led_by_me().len();
        let report = |still_leading: usize| DrainReport { led, still_leading, took: started.elapsed() };
        let mut last_push = None::<Instant>;
        let mut shutdown = self.shutdown.subscribe();
        while crate::rounds::next(Duration::from_millis(100), &mut shutdown).await {
            let leading = led_by_me();
            if leading.is_empty() || started.elapsed() >= timeout {
                let r = report(leading.len());
                tracing::info!(led, still_leading = r.still_leading, ms = r.took.as_millis() as u64, "drained");
                return r;
            }
            if last_push.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
                continue;
            }
            last_push = Some(Instant::now());
            let mut handed = 0;
            for group in leading.iter().copied() {
                if let Some(to) = self.cluster.handoff_target(group, self.heartbeat * 3) {
                    let _ = groups.transfer_leader(group, to).await;
                    handed += 1;
                }
            }
            // No healthy peer to take anything: stop waiting for one.
            if handed == 0 && started.elapsed() >= Duration::from_secs(1) {
                tracing::warn!(still_leading = leading.len(), "no healthy peer to take leadership; stopping");
                return report(leading.len());
            }
        }
        report(led_by_me().len())
    }

    /// Stops servers and loops, then every Raft group.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        self.cluster.groups().shutdown().await;
        // Whatever was handed to the WAL syncer last (a purge, say) may
        // still be queued or in RocksDB's WAL buffer: write and sync it.
        if let Err(err) = self.syncer.sync().await {
            tracing::warn!(error = %err, "cannot sync the wal on shutdown");
        }
        tracing::info!("node stopped");
    }
}

/// Opens the node's RocksDB and starts its WAL syncer.
fn open_storage(config: &Config) -> Result<(Db, Syncer), NodeError> {
    let fsync = !config.storage.unsafe_no_fsync;
    if !fsync {
        tracing::warn!("unsafe_no_fsync is on: a crash may lose acknowledged grants; never use it in production");
    }
    let db = Db::open(&config.data_dir.join("db"), fsync)?;
    let syncer = Syncer::start_slowed(db.clone(), fsync, SlowDisk::of(config));
    Ok((db, syncer.map_err(io("cannot start the wal syncer"))?))
}

/// Starts the loops: upkeep (keeper, sessions, gauges), then the cluster's
/// own (balancer, reconciler, node pings, quiescer).
fn spawn_loops(
    config: &Config,
    cluster: &Arc<Cluster>,
    keeper: Arc<Keeper>,
    sessions: Arc<Sessions>,
    propose: Arc<dyn Propose>,
    rx: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    use crate::raft::{balancer, reconciler};
    use crate::upkeep::{gauges, keeper, sessions as session_loop};
    let groups = cluster.groups().clone();
    let heartbeat = Duration::from_millis(config.raft.heartbeat_interval_ms);
    let timing = quiesce::Timing::from_config(&config.raft);
    let pings = liveness::run(
        cluster.router().clone(),
        groups.count(),
        cluster.liveness().clone(),
        (heartbeat, timing.live_within),
        cluster.clone(),
        rx.clone(),
    );
    vec![
        tokio::spawn(keeper::run(keeper, groups.clone(), propose.clone(), rx.clone())),
        tokio::spawn(session_loop::run(sessions.clone(), propose, config.groups, rx.clone())),
        tokio::spawn(gauges::run(groups, sessions, rx.clone())),
        tokio::spawn(balancer::run(cluster.clone(), heartbeat, rx.clone())),
        tokio::spawn(reconciler::run(cluster.clone(), heartbeat * 5, rx.clone())),
        tokio::spawn(pings),
        tokio::spawn(quiesce::run(cluster.clone(), timing, heartbeat, rx)),
    ]
}

/// Resolves when the shutdown signal turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Tells every peer whether this node is draining (best effort, in parallel).
async fn announce_all(cluster: Arc<Cluster>, peers: Vec<NodeId>, draining: bool) {
    let me = cluster.me();
    let notices = peers.iter().map(|peer| announce(cluster.router(), *peer, me, draining));
    futures::future::join_all(notices).await;
}
