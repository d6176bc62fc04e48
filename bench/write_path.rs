//! The replicated write path, end to end, in one process: three nodes with
//! real RocksDB (fsync on) in a temporary directory, each on its own thread
//! and single-threaded runtime as `shardlock serve` runs them, on loopback
//! ports; N clients of the Rust client (each its own connection) run
//! acquire + release cycles on names no other client uses.
//!
//! ```text
//! cargo bench --bench write_path -- [--clients 64] [--seconds 10] [--groups 8] [--threads 1] [--hot]
//! ```
//!
//! Prints cycles/s, cycle latency, the process's CPU per cycle (nodes and
//! clients together), fsyncs per cycle, peer messages per cycle and the
//! per-stage histograms of the write (`shardlock_write_stage_seconds`).
//! With `--hot` every client takes one lock, blocking (each cycle is a
//! hand-off). Bounded: at most 120 s of load; the nodes stop at the end.
//! It takes under a minute, build excluded, so a change to the path can be
//! measured before and after on the same machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardlock::client::{AcquireOptions, Client};
use shardlock::config::{Config, Peer};
use shardlock::node::Node;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    clients: usize,
    seconds: u64,
    groups: u32,
    threads: usize,
    hot: bool,
}

fn args() -> Args {
    let mut a = Args { clients: 64, seconds: 10, groups: 8, threads: 1, hot: false };
    let argv: Vec<String> = std::env::args().collect();
    let value = |i: usize| argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
    for (i, arg) in argv.iter().enumerate() {
        match arg.as_str() {
            "--clients" => a.clients = value(i).unwrap_or(64) as usize,
            "--seconds" => a.seconds = value(i).unwrap_or(10).clamp(1, 120),
            "--groups" => a.groups = value(i).unwrap_or(8) as u32,
            "--threads" => a.threads = value(i).unwrap_or(1) as usize,
            "--hot" => a.hot = true,
            _ => {}
        }
    }
    a
}

/// CPU time (user + system) of this whole process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn free_listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1")
}

/// Starts node `id` of `peers` on a thread of its own; returns when it is up.
fn start_node(
    config: Config,
    client: std::net::TcpListener,
    peer: std::net::TcpListener,
) -> std::sync::mpsc::Sender<()> {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
    let threads = config.runtime_threads;
    std::thread::spawn(move || {
        let runtime = match threads {
            1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            n => tokio::runtime::Builder::new_multi_thread().worker_threads(n.max(1)).enable_all().build(),
        }
        .expect("node runtime");
        runtime.block_on(async move {
            client.set_nonblocking(true).unwrap();
            peer.set_nonblocking(true).unwrap();
            let client = tokio::net::TcpListener::from_std(client).unwrap();
            let peer = tokio::net::TcpListener::from_std(peer).unwrap();
            let node = Node::start_with(config, client, peer).await.expect("node starts");
            up_tx.send(()).unwrap();
            tokio::task::spawn_blocking(move || stop_rx.recv()).await.ok();
            node.shutdown().await;
        });
    });
    up_rx.recv().expect("node came up");
    stop_tx
}

/// The sum of `metric` lines of the Prometheus text whose labels contain `filter`.
fn sum_of(text: &str, metric: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(filter))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn stage_table(before: &str, after: &str) -> String {
    let mut out = String::from("| stage | count | mean µs |\n|---|---|---|\n");
    for stage in ["queue", "append", "fsync", "replicate", "commit", "apply", "reply"] {
        let filter = format!("stage=\"{stage}\"");
        let count = |t: &str| sum_of(t, "shardlock_write_stage_seconds_count", &filter);
        let sum = |t: &str| sum_of(t, "shardlock_write_stage_seconds_sum", &filter);
        let n = count(after) - count(before);
        let mean = if n > 0.0 { (sum(after) - sum(before)) / n * 1e6 } else { 0.0 };
        out.push_str(&format!("| {stage} | {n:.0} | {mean:.0} |\n"));
    }
    out
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let listeners: Vec<_> = (0..3).map(|_| (free_listener(), free_listener())).collect();
    let peers: Vec<Peer> = listeners
        .iter()
        .enumerate()
        .map(|(i, (c, p))| Peer {
            id: i as u64 + 1,
            client_addr: c.local_addr().unwrap().to_string(),
            peer_addr: p.local_addr().unwrap().to_string(),
        })
        .collect();
    let mut stops = Vec::new();
    for (i, (client, peer)) in listeners.into_iter().enumerate() {
        let config = Config {
            node_id: i as u64 + 1,
            data_dir: dir.path().join(format!("node{}", i + 1)),
            client_addr: peers[i].client_addr.clone(),
            peer_addr: peers[i].peer_addr.clone(),
            groups: a.groups,
            initial_cluster: peers.clone(),
            runtime_threads: a.threads,
            ..Config::default()
        };
        stops.push(start_node(config, client, peer));
    }
    // The clients run as the loadtest's do: a multi-threaded runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(load(&a, &peers));
    drop(stops);
    // The node threads stop on their own; give them a moment to sync.
    std::thread::sleep(Duration::from_millis(500)); // shutdown grace, not a measurement
}

async fn load(a: &Args, peers: &[Peer]) {
    let seeds: Vec<&str> = peers.iter().map(|p| p.client_addr.as_str()).collect();
    let probe = Client::connect_any(&seeds).await.expect("connect");
    // Every group has a leader, and leaders are spread (the balancer's
    // transfers are done), before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !balanced(&probe).await {
        assert!(Instant::now() < deadline, "the cluster did not settle its leaders within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await; // polling interval
    }
    probe.refresh_topology().await.expect("topology");
    let mut clients = Vec::new();
    for i in 0..a.clients {
        clients.push(Client::connect(seeds[i % seeds.len()]).await.expect("connect"));
    }
    let (syncs_before, metrics_before) = (wal_syncs(&probe).await, shardlock::metrics::render());
    let (cycles, micros) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cpu_before = process_cpu();
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let (cycles, micros, hot) = (cycles.clone(), micros.clone(), a.hot);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let name = if hot { "bench/hot".to_owned() } else { format!("bench/{i}/{}", n % 1000) };
                    let opts = AcquireOptions {
                        ttl_ms: Some(30_000),
                        wait_ms: if hot { 60_000 } else { 0 },
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let grant = client.acquire(&name, opts).await.expect("acquire");
                    client.release(&name, &grant.key).await.expect("release");
                    micros.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (process_cpu() - cpu_before).as_secs_f64();
    let (n, total_us) = (cycles.load(Ordering::Relaxed).max(1) as f64, micros.load(Ordering::Relaxed) as f64);
    let metrics_after = shardlock::metrics::render();
    let syncs = wal_syncs(&probe).await - syncs_before;
    let sent = |m: &str| {
        let f = format!("method=\"{m}\"");
        sum_of(&metrics_after, "shardlock_peer_messages_total", &f)
            - sum_of(&metrics_before, "shardlock_peer_messages_total", &f)
    };
    let workload = if a.hot { "one hot lock" } else { "uncontended" };
    println!(
        "write_path: {workload}, {} clients, {} groups, {} runtime thread(s) per node, {} s",
        a.clients, a.groups, a.threads, a.seconds
    );
    println!(
        "cycles/s {:.0} | mean cycle {:.2} ms | CPU {:.3} ms/cycle (nodes and clients) | fsyncs/cycle {:.3} | append_entries/cycle {:.2}",
        n / elapsed,
        total_us / n / 1000.0,
        cpu * 1000.0 / n,
        syncs as f64 / n,
        sent("append_entries") / n
    );
    let changes = |t: &str| sum_of(t, "shardlock_leader_changes_total", "");
    let codes: Vec<String> = metrics_after
        .lines()
        .filter(|l| l.starts_with("shardlock_api_requests_total") && !l.contains("code=\"OK\""))
        .map(str::to_owned)
        .collect();
    println!(
        "leader changes seen during the run: {:.0}; failed api calls (since start): {codes:?}",
        changes(&metrics_after) - changes(&metrics_before)
    );
    println!("\n{}", stage_table(&metrics_before, &metrics_after));
}

/// A leader per group, every node leading its share (within one).
async fn balanced(client: &Client) -> bool {
    let Ok(status) = client.status().await else { return false };
    let mut leads = std::collections::BTreeMap::<u64, usize>::new();
    for g in &status.group_status {
        *leads.entry(g.leader_id).or_default() += 1;
    }
    let spread = leads.values().max().unwrap_or(&0) - leads.values().min().unwrap_or(&0);
    let wanted = status.nodes.len().min(status.group_status.len());
    !leads.contains_key(&0) && leads.len() >= wanted && spread <= 1
}

async fn wal_syncs(client: &Client) -> u64 {
    // Every node reports its own syncs; ask each.
    let mut total = 0;
    for addr in client.topology().addrs().map(str::to_owned).collect::<Vec<_>>() {
        if let Ok(c) = Client::connect(&addr).await {
            total += c.status().await.map_or(0, |s| s.wal_syncs);
        }
    }
    total
}
