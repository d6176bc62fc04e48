//! Node start-up and shutdown: storage, groups, servers and loops.
//!
//! Invariants: a node refuses to start on a data directory of another node
//! or another group count; the peer and client servers take their listeners
//! from the caller (tests bind ephemeral ports) and stop on the node's
//! shutdown signal; background loops (lease keeper, balancer) stop with it;
//! shutdown is bounded in time even if a client keeps a connection open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::effects::EffectSink;
use super::forward::ForwardService;
use super::keeper::Keeper;
use super::peers::PeerHandler;
use super::service::LockService;
use super::waits::Waits;
use crate::config::{Config, ConfigError};
use crate::raft::groups::GroupsError;
use crate::raft::service::RaftPeerService;
use crate::raft::Groups;
use crate::storage::identity::{self, IdentityError};
use crate::storage::syncer::{Slowdown, Syncer};
use crate::storage::{Db, StorageError};

/// How often the lease keeper looks for due deadlines.
const KEEPER_TICK: Duration = Duration::from_millis(50);
/// How often sessions are checked for expiry and due refreshes.
const SESSION_TICK: Duration = Duration::from_millis(100);
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
    groups: Arc<Groups>,
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
        let fsync = !config.storage.unsafe_no_fsync;
        if !fsync {
            tracing::warn!("unsafe_no_fsync is on: a crash may lose acknowledged grants; never use it in production");
        }
        let db = Db::open(&config.data_dir.join("db"), fsync)?;
        let slow_disk = Slowdown {
            delay: Duration::from_millis(config.storage.test_only_sync_delay_ms),
            switch: Some(config.data_dir.join(crate::storage::syncer::SLOW_DISK_SWITCH)),
        };
        if !slow_disk.delay.is_zero() {
            tracing::warn!(
                ms = config.storage.test_only_sync_delay_ms,
                switch = crate::storage::syncer::SLOW_DISK_SWITCH,
                "test_only_sync_delay_ms is on: wal syncs are slowed while the switch file is in the data directory"
            );
        }
        let syncer = Syncer::start_slowed(db.clone(), fsync, slow_disk).map_err(io("cannot start the wal syncer"))?;
        let waits = Arc::new(Waits::default());
        let keeper = Arc::new(Keeper::new(config.groups, config.idle_lock_grace_ms));
        crate::metrics::install();
        let contention = Arc::new(crate::metrics::Contention::new(10_000));
        let sink =
            Arc::new(EffectSink { waits: waits.clone(), keeper: keeper.clone(), contention: contention.clone() });
        let groups = Arc::new(Groups::start(&config, db, syncer.clone(), sink).await?);
        let service = Arc::new(LockService::new(
            groups.clone(),
            waits,
            keeper.clone(),
            config.clone(),
            syncer.clone(),
            contention,
        ));
        let (shutdown, rx) = watch::channel(false);
        let client_addr = client.local_addr().map_err(io("client listener"))?;
        let peer_addr = peer.local_addr().map_err(io("peer listener"))?;
        let peer_tls = crate::tls::peer_server(&config.tls)?;
        let client_tls = crate::tls::client_port(&config.tls)?;
        let mut tasks = vec![
            tokio::spawn(serve_peer(peer, groups.clone(), service.clone(), peer_tls, rx.clone())),
            tokio::spawn(crate::api::serve_client(client, service.clone(), client_tls, stopped(rx.clone()))),
        ];
        if config.bootstrap {
            groups.bootstrap().await?;
        }
        tasks.push(tokio::spawn(run_keeper(service.clone(), keeper, rx.clone())));
        tasks.push(tokio::spawn(run_sessions(service.clone(), rx.clone())));
        tasks.push(tokio::spawn(super::gauges::run(service.clone(), rx.clone())));
        let heartbeat = Duration::from_millis(config.raft.heartbeat_interval_ms);
        tasks.push(tokio::spawn(super::balancer::run(groups.clone(), heartbeat, rx.clone())));
        tasks.push(tokio::spawn(super::reconciler::run(service.clone(), heartbeat * 5, rx.clone())));
        tasks.extend(spawn_quiescing(&groups, &config, rx));
        let peers: Vec<_> = config.voters().iter().map(|p| p.id).filter(|id| *id != config.node_id).collect();
        tokio::spawn(announce_all(groups.clone(), peers, false));
        tracing::info!(node = config.node_id, %client_addr, %peer_addr, groups = config.groups, "node started");
        Ok(Self { client_addr, peer_addr, groups, service, syncer, shutdown, tasks, heartbeat })
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    pub fn service(&self) -> &Arc<LockService> {
        &self.service
    }

    pub fn syncer(&self) -> &Syncer {
        &self.syncer
    }

    /// Drains the node: refuses new requests, answers its waiters with a
    /// retryable `DRAINING`, tells peers not to hand it leadership, and moves
    /// the leadership of every group it leads to a healthy peer, for at most
    /// `timeout`. Call `shutdown` afterwards.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let started = Instant::now();
        self.service.start_draining();
        let mut peers: Vec<_> = self.groups.cluster().nodes.keys().copied().collect();
        peers.retain(|p| *p != self.groups.me());
        announce_all(self.groups.clone(), peers, true).await;
        let led_by_me = |groups: &Groups| (0..groups.count()).filter(|g| groups.view(*g).is_leader).collect::<Vec<_>>();
        let led = led_by_me(&self.groups).len();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_push = None::<Instant>;
        loop {
            tick.tick().await;
            let leading = led_by_me(&self.groups);
            if leading.is_empty() || started.elapsed() >= timeout {
                let report = DrainReport { led, still_leading: leading.len(), took: started.elapsed() };
                tracing::info!(
                    led,
                    still_leading = report.still_leading,
                    ms = report.took.as_millis() as u64,
                    "drained"
                );
                return report;
            }
            if last_push.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
                last_push = Some(Instant::now());
                let mut handed = 0;
                for group in leading.iter().copied() {
                    if let Some(to) = self.handoff_target(group) {
                        let _ = self.groups.raft(group).trigger().transfer_leader(to).await;
                        handed += 1;
                    }
                }
                // No healthy peer to take anything: stop waiting for one.
                if handed == 0 && started.elapsed() >= Duration::from_secs(1) {
                    let report = DrainReport { led, still_leading: leading.len(), took: started.elapsed() };
                    tracing::warn!(
                        still_leading = report.still_leading,
                        "no healthy peer to take leadership; stopping"
                    );
                    return report;
                }
            }
        }
    }

    /// A healthy, non-draining peer to take `group`, its preferred leader first.
    fn handoff_target(&self, group: crate::routing::GroupId) -> Option<crate::raft::NodeId> {
        let max_age = self.heartbeat * 3;
        let me = self.groups.me();
        let ok = |id: &crate::raft::NodeId| {
            *id != me && !self.groups.peer_draining(*id) && self.groups.follower_healthy(group, *id, max_age)
        };
        let voters = self.groups.voter_ids(group);
        let preferred = self.groups.cluster().placement.preferred_leader(group).filter(|p| voters.contains(p) && ok(p));
        preferred.or_else(|| voters.iter().copied().find(ok))
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
        self.groups.shutdown().await;
        // What the groups wrote last (the committed indexes) is still in
        // RocksDB's WAL buffer: write and sync it.
        if let Err(err) = self.syncer.sync().await {
            tracing::warn!(error = %err, "cannot sync the wal on shutdown");
        }
        tracing::info!("node stopped");
    }
}

/// Starts the node pings and the quiescer (idle groups stop their timers).
fn spawn_quiescing(
    groups: &Arc<Groups>,
    config: &Config,
    rx: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use crate::raft::{liveness, quiesce};
    let timing = quiesce::Timing::from_config(&config.raft);
    let every = Duration::from_millis(config.raft.heartbeat_interval_ms);
    let woken = groups.clone();
    let revived = move |_peer| woken.wake_led_groups();
    let pings = liveness::run(
        groups.router().clone(),
        groups.count(),
        groups.liveness().clone(),
        every,
        timing.live_within,
        revived,
        rx.clone(),
    );
    vec![tokio::spawn(pings), tokio::spawn(quiesce::run(groups.clone(), timing, every, rx))]
}

/// Resolves when the shutdown signal turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn serve_peer(
    listener: TcpListener,
    groups: Arc<Groups>,
    service: Arc<LockService>,
    tls: Option<crate::peer::server::Acceptor>,
    rx: watch::Receiver<bool>,
) {
    let transfer_wake = Duration::from_millis(service.config().raft.election_timeout_max_ms * 2);
    let raft = RaftPeerService::new(groups.quiescer().clone(), groups.me(), transfer_wake);
    let limit = crate::raft::groups::peer_frame_limit(service.config());
    let handler = Arc::new(PeerHandler::new(raft, ForwardService::new(service)));
    crate::peer::server::serve(listener, handler, tls, limit, stopped(rx)).await;
    groups.router().links().close_all();
}

/// The lease keeper's loop: proposes due expiries, wait timeouts and GC in
/// the groups this node leads.
async fn run_keeper(service: Arc<LockService>, keeper: Arc<Keeper>, mut rx: watch::Receiver<bool>) {
    let groups = service.groups().clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(KEEPER_TICK) => {}
            _ = rx.changed() => return,
        }
        let now = Instant::now();
        for group in 0..groups.count() {
            keeper.set_leader(group, groups.view(group).is_leader, now);
            for cmd in groups.state(group).read(|table| keeper.due(group, now, table)) {
                let service = service.clone();
                tokio::spawn(async move {
                    if let Err(err) = service.proposer().propose_local(group, cmd.clone()).await {
                        tracing::debug!(group, %cmd, error = %err, "leader command not applied");
                    }
                });
            }
        }
    }
}

/// Session upkeep: ends expired sessions, refreshes what live ones hold.
async fn run_sessions(service: Arc<LockService>, mut rx: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SESSION_TICK) => {}
            _ = rx.changed() => return,
        }
        service.session_tick(Instant::now());
    }
}

/// Tells every peer whether this node is draining (best effort, in parallel).
async fn announce_all(groups: Arc<Groups>, peers: Vec<crate::raft::NodeId>, draining: bool) {
    let me = groups.me();
    let notices = peers.iter().map(|peer| super::forward::announce(groups.router(), *peer, me, draining));
    futures::future::join_all(notices).await;
}
