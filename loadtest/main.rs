//! `shardlock-loadtest`: closed-loop load against shardlock, or against
//! shardlock and etcd side by side.
//!
//! N clients, each with its own connection, spread round-robin over the
//! given nodes, loop until the duration ends (bounded: at most 10 minutes a
//! run). Workloads:
//! - `uncontended`: acquire + release on names no other client uses;
//! - `hot`: every client acquires one lock (blocking) and releases it at
//!   once: each cycle is one hand-off;
//! - `semaphore`: M clients contend for a semaphore of size S; the tool
//!   checks that never more than S clients hold at once (shardlock only:
//!   etcd has no semaphore);
//! - `reads`: linearizable checks of a held lock (shardlock `ValidateFence`,
//!   etcd `Range` of the lock key).
//!
//! `run` prints one table for shardlock. `compare` alternates shardlock and
//! etcd (A B A B …, `--pairs` times) with the same workloads and client
//! counts and prints each run and the median ratios. Per run: cycles/s,
//! p50/p99/p99.9 of a whole cycle (HdrHistogram), WAL fsyncs per cycle,
//! server CPU per cycle (from /proc of the `--*-pids` given) and the CPU that
//! other processes used meanwhile (a run is flagged noisy above 20%).

mod etcd;
mod resp;
mod stages;
mod state;
mod watchers;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use shardlock::client::{AcquireOptions, Client};
use shardlock::proto::v1 as pb;
use shardlock::proto::v1::lock_client::LockClient;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(name = "shardlock-loadtest", about = "Closed-loop load against shardlock (and etcd)")]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum Mode {
    /// Shardlock alone (the default).
    Run,
    /// Shardlock and etcd alternated, with median ratios.
    Compare {
        /// etcd client endpoints.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793")]
        etcd: Vec<String>,
        /// etcd server pids (for CPU accounting).
        #[arg(long, value_delimiter = ',')]
        etcd_pids: Vec<u32>,
        /// A/B pairs per workload.
        #[arg(long, default_value_t = 3)]
        pairs: usize,
        /// Client counts of the uncontended workload.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        uncontended_clients: Vec<usize>,
    },
    /// One shardlock node's RESP surface against `redis-server` (appendonly,
    /// appendfsync always), alternated, with its gRPC surface's server CPU
    /// per cycle beside (see loadtest/vs_redis.sh).
    VsRedis {
        /// redis-server's address.
        #[arg(long, default_value = "127.0.0.1:6399")]
        redis: String,
        /// redis-server's pid (for CPU accounting).
        #[arg(long)]
        redis_pid: Option<u32>,
        /// A second shardlock node, of an older build, whose gRPC surface is
        /// measured the same way (server CPU per cycle, before and after).
        #[arg(long)]
        baseline: Option<String>,
        #[arg(long)]
        baseline_pid: Option<u32>,
        /// A/B pairs per client count.
        #[arg(long, default_value_t = 3)]
        pairs: usize,
        /// Client counts.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        clients_list: Vec<usize>,
    },
    /// Memory per held lock and per waiter (see loadtest/state.sh).
    State {
        /// Locks to acquire and keep.
        #[arg(long, default_value_t = 100_000)]
        locks: usize,
        /// Blocking acquires to queue on the held locks.
        #[arg(long, default_value_t = 10_000)]
        waiters: usize,
        /// Acquires in flight while filling.
        #[arg(long, default_value_t = 512)]
        in_flight: usize,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Client addresses of the shardlock nodes.
    #[arg(long, global = true, default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", value_delimiter = ',')]
    addrs: Vec<String>,
    /// shardlock server pids (for CPU accounting).
    #[arg(long, global = true, value_delimiter = ',')]
    pids: Vec<u32>,
    /// uncontended, hot, semaphore, reads, or all (run mode).
    #[arg(long, global = true, default_value = "all")]
    workload: String,
    /// Concurrent clients (run mode: uncontended, reads).
    #[arg(long, global = true, default_value_t = 64)]
    clients: usize,
    /// Seconds per run.
    #[arg(long, global = true, default_value_t = 10)]
    duration: u64,
    /// Semaphore size and contenders.
    #[arg(long, global = true, default_value_t = 8)]
    size: u32,
    #[arg(long, global = true, default_value_t = 64)]
    contenders: usize,
    /// How long each semaphore holder holds its permit, in milliseconds:
    /// long enough for holders to overlap, so the check can see more
    /// holders at once than the size (it would report a VIOLATION).
    #[arg(long, global = true, default_value_t = 1)]
    hold_ms: u64,
    /// Cycles per second to offer in all (uncontended and semaphore
    /// workloads), spread evenly over the clients; 0: each client cycles as
    /// fast as it can (closed loop).
    #[arg(long, global = true, default_value_t = 0)]
    rate: u64,
    /// Hot-lock contenders.
    #[arg(long, global = true, default_value_t = 16)]
    hot_clients: usize,
    /// Lease TTL of every grant, in seconds (both systems).
    #[arg(long, global = true, default_value_t = 30)]
    ttl_s: u64,
    /// After each shardlock run, print the write path's per-stage
    /// histograms (`shardlock_write_stage_seconds`, summed over the nodes).
    #[arg(long, global = true)]
    stages: bool,
    /// Which shardlock clients to run: leader (the Rust client, routing to
    /// group leaders), any (plain gRPC pinned to one node each), resp (a
    /// RESP connection pinned to one node each), both (leader and any), or
    /// all three.
    #[arg(long, global = true, default_value = "both", value_parser = ["leader", "any", "resp", "both", "all"])]
    routing: String,
    /// Prefix watches of the run's locks opened beside each leader-routing
    /// uncontended run; their figures (events/s per watcher, delays) go in
    /// the run's notes.
    #[arg(long, global = true, default_value_t = 0)]
    watchers: usize,
}

impl Common {
    fn systems(&self) -> Vec<System> {
        match self.routing.as_str() {
            "leader" => vec![System::Shardlock],
            "any" => vec![System::ShardlockAnyNode],
            "resp" => vec![System::ShardlockResp],
            "all" => vec![System::Shardlock, System::ShardlockAnyNode, System::ShardlockResp],
            _ => vec![System::Shardlock, System::ShardlockAnyNode],
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Uncontended,
    Hot,
    Semaphore,
    Reads,
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    /// The Rust client: each request goes straight to its group's leader.
    Shardlock,
    /// A plain gRPC client pinned to one node (client `i` to node `i % n`),
    /// as ldlm, REST and generated gRPC clients are: the node forwards.
    ShardlockAnyNode,
    /// A RESP connection pinned to one node (client `i` to node `i % n`).
    ShardlockResp,
    Etcd,
    /// `redis-server`, through the same RESP driver.
    Redis,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Shardlock => "shardlock",
            System::ShardlockAnyNode => "shardlock any-node",
            System::ShardlockResp => "shardlock resp",
            System::Etcd => "etcd",
            System::Redis => "redis",
        }
    }
}

/// One run's figures.
#[derive(Clone)]
struct Figures {
    cycles_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    fsyncs_per_cycle: Option<f64>,
    cpu_ms_per_cycle: Option<f64>,
    other_cpu_pct: f64,
    notes: String,
}

struct Shared {
    hist: std::sync::Mutex<Histogram<u64>>,
    cycles: AtomicU64,
    errors: AtomicU64,
    inside: AtomicUsize,
    most_inside: AtomicUsize,
    /// With watchers: when each grant's reply came (the leader-routing client).
    replied: Option<watchers::Times>,
}

/// The same allocator as the server binary (both systems' runs use this
/// load generator, so it costs them the same).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let c = &cli.common;
    if c.duration == 0 || c.duration > 600 {
        bail!("--duration must be 1 to 600 seconds");
    }
    match &cli.mode {
        None | Some(Mode::Run) => run(c).await,
        Some(Mode::Compare { etcd, etcd_pids, pairs, uncontended_clients }) => {
            compare(c, etcd, etcd_pids, *pairs, uncontended_clients).await
        }
        Some(Mode::VsRedis { redis, redis_pid, baseline, baseline_pid, pairs, clients_list }) => {
            let baseline = baseline.as_ref().map(|addr| (addr.clone(), *baseline_pid));
            vs_redis(c, (redis, *redis_pid), baseline, *pairs, clients_list).await
        }
        Some(Mode::State { locks, waiters, in_flight }) => {
            state::run(&c.addrs, &c.pids, *locks, *waiters, *in_flight).await
        }
    }
}

const HEADER: &str = "| system | workload | clients | cycles/s | p50 ms | p99 ms | p99.9 ms | errors | fsyncs/cycle | server CPU ms/cycle | other CPU % | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

fn row(system: &str, label: &str, clients: usize, f: &Figures) -> String {
    let opt = |v: Option<f64>, prec: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.prec$}"));
    let noisy = if f.other_cpu_pct > 20.0 { " NOISY" } else { "" };
    format!(
        "| {system} | {label} | {clients} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.0}{noisy} | {} |",
        f.cycles_per_s,
        f.p50_ms,
        f.p99_ms,
        f.p999_ms,
        f.errors,
        opt(f.fsyncs_per_cycle, 3),
        opt(f.cpu_ms_per_cycle, 3),
        f.other_cpu_pct,
        f.notes
    )
}

/// Waits (up to 120 s) until every group has a leader and leadership is
/// spread evenly over the nodes, so a fresh cluster's balancing (leader
/// transfers in its first seconds) is not measured as request latency.
async fn settled(addr: &str) -> anyhow::Result<()> {
    let client = Client::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(status) = client.status().await {
            let mut leads = std::collections::BTreeMap::<u64, usize>::new();
            let led = status.group_status.iter().filter(|g| g.leader_id != 0).count();
            for g in &status.group_status {
                *leads.entry(g.leader_id).or_default() += 1;
            }
            let spread = leads.values().max().unwrap_or(&0) - leads.values().min().unwrap_or(&0);
            let leaders_wanted = status.nodes.len().min(status.group_status.len());
            if led == status.group_status.len() && leads.len() >= leaders_wanted && spread <= 1 {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("the cluster did not settle (a leader per group, spread evenly) within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // polling interval
    }
}

async fn run(c: &Common) -> anyhow::Result<()> {
    let want = |w: &str| c.workload == "all" || c.workload == w;
    settled(&c.addrs[0]).await?;
    println!("{HEADER}");
    let plan = [
        ("uncontended", Workload::Uncontended, c.clients, "uncontended acquire+release"),
        ("hot", Workload::Hot, c.hot_clients, "one hot lock (hand-offs)"),
        ("semaphore", Workload::Semaphore, c.contenders, "semaphore"),
        ("reads", Workload::Reads, c.clients, "linearizable fence reads"),
    ];
    for (key, w, clients, label) in plan {
        if !want(key) {
            continue;
        }
        for system in c.systems() {
            let before = stages::Scrape::take(&c.addrs).await;
            let f = measure(c, system, &c.addrs, &c.pids, w, clients).await?;
            println!("{}", row(system.label(), label, clients, &f));
            if c.stages {
                let after = stages::Scrape::take(&c.addrs).await;
                println!("\nstages of `{label}`, {clients} clients:\n\n{}", after.table_since(&before));
                let cycles = f.cycles_per_s * c.duration as f64;
                println!("{}\n", after.messages_since(&before, cycles));
            }
        }
    }
    Ok(())
}

async fn compare(c: &Common, etcd: &[String], etcd_pids: &[u32], pairs: usize, unc: &[usize]) -> anyhow::Result<()> {
    let mut plan: Vec<(Workload, usize, String)> =
        unc.iter().map(|&n| (Workload::Uncontended, n, "uncontended acquire+release".to_owned())).collect();
    plan.push((Workload::Hot, c.hot_clients, "one hot lock (hand-offs)".to_owned()));
    plan.push((Workload::Reads, c.clients, "linearizable reads".to_owned()));
    plan.push((Workload::Semaphore, c.contenders, format!("semaphore size {}", c.size)));
    settled(&c.addrs[0]).await?;
    println!("{HEADER}");
    let mut summary = Vec::new();
    for (w, clients, label) in &plan {
        let systems = c.systems();
        let mut ours: Vec<Vec<Figures>> = vec![Vec::new(); systems.len()];
        let mut theirs = Vec::new();
        for _ in 0..pairs {
            for (i, system) in systems.iter().enumerate() {
                let a = measure(c, *system, &c.addrs, &c.pids, *w, *clients).await?;
                println!("{}", row(system.label(), label, *clients, &a));
                ours[i].push(a);
            }
            if *w == Workload::Semaphore {
                continue; // etcd has no semaphore
            }
            let b = measure(c, System::Etcd, etcd, etcd_pids, *w, *clients).await?;
            println!("{}", row("etcd", label, *clients, &b));
            theirs.push(b);
        }
        for (system, ours) in systems.iter().zip(ours) {
            summary.push((system.label(), label.clone(), *clients, ours, theirs.clone()));
        }
    }
    println!("\n| shardlock client | workload | clients | shardlock cycles/s (median) | etcd cycles/s (median) | throughput ratio | shardlock p50 ms | etcd p50 ms | p50 ratio (etcd/shardlock) | shardlock p99 ms | etcd p99 ms | shardlock CPU ms/cycle | etcd CPU ms/cycle |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (system, label, clients, ours, theirs) in summary {
        let med = |v: &[Figures], f: fn(&Figures) -> f64| {
            let mut xs: Vec<f64> = v.iter().map(f).collect();
            xs.sort_by(|a, b| a.total_cmp(b));
            xs.get(xs.len() / 2).copied()
        };
        let (a, b) = (med(&ours, |f| f.cycles_per_s), med(&theirs, |f| f.cycles_per_s));
        let (pa, pb) = (med(&ours, |f| f.p50_ms), med(&theirs, |f| f.p50_ms));
        let (qa, qb) = (med(&ours, |f| f.p99_ms), med(&theirs, |f| f.p99_ms));
        let cpu = |f: &Figures| f.cpu_ms_per_cycle.unwrap_or(f64::NAN);
        let (ca, cb) = (med(&ours, cpu).filter(|v| !v.is_nan()), med(&theirs, cpu).filter(|v| !v.is_nan()));
        let fmt = |v: Option<f64>, p: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.p$}"));
        let ratio = a.zip(b).map(|(a, b)| a / b.max(1e-9));
        let pratio = pa.zip(pb).map(|(a, b)| b / a.max(1e-9));
        let client = match system {
            "shardlock" => "leader-routing",
            "shardlock resp" => "any node, RESP",
            _ => "any node",
        };
        println!(
            "| {client} | {label} | {clients} | {} | {} | {}x | {} | {} | {}x | {} | {} | {} | {} |",
            fmt(a, 0),
            fmt(b, 0),
            fmt(ratio, 2),
            fmt(pa, 2),
            fmt(pb, 2),
            fmt(pratio, 2),
            fmt(qa, 2),
            fmt(qb, 2),
            fmt(ca, 3),
            fmt(cb, 3)
        );
    }
    Ok(())
}

/// One shardlock node against `redis-server`, alternated: the uncontended
/// cycle at each client count, RESP against Redis, and the node's gRPC
/// surface (and, given one, an older build's) for its server CPU per cycle.
async fn vs_redis(
    c: &Common,
    (redis, redis_pid): (&str, Option<u32>),
    baseline: Option<(String, Option<u32>)>,
    pairs: usize,
    clients_list: &[usize],
) -> anyhow::Result<()> {
    let label = "uncontended acquire+release";
    settled(&c.addrs[0]).await?;
    if let Some((addr, _)) = &baseline {
        settled(addr).await?;
    }
    let node = vec![c.addrs[0].clone()];
    let redis = vec![redis.to_owned()];
    let mut runs: Vec<(&str, System, &[String], Vec<u32>)> = vec![
        ("shardlock resp", System::ShardlockResp, &node, c.pids.clone()),
        ("redis", System::Redis, &redis, redis_pid.into_iter().collect()),
        ("shardlock grpc", System::ShardlockAnyNode, &node, c.pids.clone()),
    ];
    let base_addr = baseline.as_ref().map(|(a, _)| vec![a.clone()]);
    if let (Some(addr), Some((_, pid))) = (&base_addr, &baseline) {
        runs.push(("baseline grpc", System::ShardlockAnyNode, addr, pid.into_iter().copied().collect()));
    }
    println!("{HEADER}");
    let mut summary = Vec::new();
    for &clients in clients_list {
        let mut figures: Vec<Vec<Figures>> = vec![Vec::new(); runs.len()];
        for _ in 0..pairs {
            for (i, (name, system, addrs, pids)) in runs.iter().enumerate() {
                let f = measure(c, *system, addrs, pids, Workload::Uncontended, clients).await?;
                println!("{}", row(name, label, clients, &f));
                figures[i].push(f);
            }
        }
        summary.push((clients, figures));
    }
    let med = |v: &[Figures], f: fn(&Figures) -> Option<f64>| {
        let mut xs: Vec<f64> = v.iter().filter_map(f).collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        xs.get(xs.len() / 2).copied()
    };
    let fmt = |v: Option<f64>, p: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.p$}"));
    let ratio = |a: Option<f64>, b: Option<f64>| fmt(a.zip(b).map(|(a, b)| a / b.max(1e-9)), 2);
    println!("\n| clients | RESP cycles/s | Redis cycles/s | RESP/Redis | RESP p50 ms | Redis p50 ms | p50 RESP/Redis | RESP CPU ms/cycle | Redis CPU ms/cycle | gRPC CPU ms/cycle | baseline gRPC CPU ms/cycle | gRPC CPU now/baseline |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (clients, f) in summary {
        let (rate, p50, cpu) =
            (|f: &Figures| Some(f.cycles_per_s), |f: &Figures| Some(f.p50_ms), |f: &Figures| f.cpu_ms_per_cycle);
        let (ra, rb) = (med(&f[0], rate), med(&f[1], rate));
        let (pa, pb) = (med(&f[0], p50), med(&f[1], p50));
        let (ca, cb, cg) = (med(&f[0], cpu), med(&f[1], cpu), med(&f[2], cpu));
        let cbase = f.get(3).and_then(|v| med(v, cpu));
        println!(
            "| {clients} | {} | {} | {}x | {} | {} | {}x | {} | {} | {} | {} | {}x |",
            fmt(ra, 0),
            fmt(rb, 0),
            ratio(ra, rb),
            fmt(pa, 3),
            fmt(pb, 3),
            ratio(pa, pb),
            fmt(ca, 3),
            fmt(cb, 3),
            fmt(cg, 3),
            fmt(cbase, 3),
            ratio(cg, cbase),
        );
    }
    Ok(())
}

/// CPU ticks (utime + stime) of `pid`, or 0 if it is gone.
fn proc_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

/// Busy CPU ticks of the whole machine.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or("");
    let v: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

async fn wal_syncs(system: System, addrs: &[String]) -> Option<u64> {
    let mut total = 0;
    for addr in addrs {
        total += match system {
            System::Shardlock | System::ShardlockAnyNode | System::ShardlockResp => {
                Client::connect(addr).await.ok()?.status().await.ok()?.wal_syncs
            }
            System::Etcd => etcd_fsyncs(addr).await?,
            System::Redis => return None,
        };
    }
    Some(total)
}

/// etcd's `etcd_disk_wal_fsync_duration_seconds_count` from its /metrics.
async fn etcd_fsyncs(addr: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    let line = body.lines().find(|l| l.starts_with("etcd_disk_wal_fsync_duration_seconds_count"))?;
    line.split_whitespace().last()?.parse::<f64>().ok().map(|v| v as u64)
}

async fn measure(
    c: &Common,
    system: System,
    addrs: &[String],
    pids: &[u32],
    workload: Workload,
    clients: usize,
) -> anyhow::Result<Figures> {
    let shared = Arc::new(Shared {
        hist: std::sync::Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        cycles: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        inside: AtomicUsize::new(0),
        most_inside: AtomicUsize::new(0),
        replied: (c.watchers > 0 && system == System::Shardlock && workload == Workload::Uncontended)
            .then(watchers::Times::default),
    });
    let run_id: u64 = rand::random::<u32>() as u64;
    let watching = match shared.replied {
        Some(_) => Some((
            watchers::Watchers::start(addrs, c.watchers, &format!("lt/{run_id}/")).await?,
            stages::Scrape::take(addrs).await,
        )),
        None => None,
    };
    let mut drivers = Vec::new();
    for i in 0..clients {
        let addr = &addrs[i % addrs.len()];
        drivers.push(match system {
            System::Shardlock => {
                Driver::Shardlock(Client::connect(addr).await.with_context(|| format!("connect {addr}"))?)
            }
            System::ShardlockAnyNode => Driver::AnyNode(any_node(addr).await?),
            System::ShardlockResp => {
                Driver::Resp(resp::Resp::connect(addr).await.with_context(|| format!("resp {addr}"))?)
            }
            System::Redis => Driver::Redis(resp::Resp::redis(addr).await.with_context(|| format!("redis {addr}"))?),
            System::Etcd => {
                Driver::Etcd(etcd::Etcd::connect(addr, c.ttl_s as i64).await.with_context(|| format!("etcd {addr}"))?)
            }
        });
    }
    let syncs_before = wal_syncs(system, addrs).await;
    let cpu_before: u64 = pids.iter().map(|p| proc_ticks(*p)).sum();
    let busy_before = machine_busy_ticks();
    let self_before = proc_ticks(std::process::id());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(c.duration);
    let mut tasks = Vec::new();
    for (i, driver) in drivers.into_iter().enumerate() {
        let shared = shared.clone();
        let paced = c.rate > 0 && matches!(workload, Workload::Uncontended | Workload::Semaphore);
        let pace = paced.then(|| Duration::from_secs_f64(clients as f64 / c.rate as f64));
        let hold = if workload == Workload::Semaphore { Duration::from_millis(c.hold_ms) } else { Duration::ZERO };
        let spec = Spec { id: i, run: run_id, workload, ttl_ms: c.ttl_s * 1000, size: c.size, deadline, pace, hold };
        tasks.push(tokio::spawn(client_loop(driver, spec, shared)));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cycles = shared.cycles.load(Ordering::Relaxed).max(1);
    let server_ticks = pids.iter().map(|p| proc_ticks(*p)).sum::<u64>().saturating_sub(cpu_before);
    let self_ticks = proc_ticks(std::process::id()).saturating_sub(self_before);
    let busy = machine_busy_ticks().saturating_sub(busy_before);
    let other = busy.saturating_sub(server_ticks + self_ticks) as f64 / ticks_per_s() / elapsed * 100.0;
    let syncs = match (syncs_before, wal_syncs(system, addrs).await) {
        (Some(a), Some(b)) => Some((b - a) as f64 / cycles as f64),
        _ => None,
    };
    let hist = shared.hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let notes = match workload {
        Workload::Semaphore => {
            let most = shared.most_inside.load(Ordering::Relaxed);
            let verdict = if most > c.size as usize { " VIOLATION" } else { "" };
            format!("max holders seen {most} of {}{verdict}", c.size)
        }
        _ => String::new(),
    };
    let notes = match (watching, &shared.replied) {
        (Some((watchers, before)), Some(replied)) => {
            let watched = watchers.finish(replied, started.elapsed()).await;
            let server = stages::Scrape::take(addrs).await.watch_delay_since(&before);
            format!("{notes}{watched}; {server}")
        }
        _ => notes,
    };
    Ok(Figures {
        cycles_per_s: cycles as f64 / elapsed,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        errors: shared.errors.load(Ordering::Relaxed),
        fsyncs_per_cycle: syncs,
        cpu_ms_per_cycle: (!pids.is_empty()).then(|| server_ticks as f64 / ticks_per_s() * 1000.0 / cycles as f64),
        other_cpu_pct: other,
        notes,
    })
}

enum Driver {
    Shardlock(Client),
    AnyNode(LockClient<Channel>),
    Resp(resp::Resp),
    Etcd(etcd::Etcd),
    Redis(resp::Resp),
}

/// A plain gRPC client of the node at `addr` (no routing, no retries).
async fn any_node(addr: &str) -> anyhow::Result<LockClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
    Ok(LockClient::new(channel))
}

struct Spec {
    id: usize,
    run: u64,
    workload: Workload,
    ttl_ms: u64,
    size: u32,
    deadline: Instant,
    /// With `--rate`: one cycle per this long, this client's share.
    pace: Option<Duration>,
    /// How long a holder holds (the semaphore workload; zero otherwise).
    hold: Duration,
}

impl Shared {
    /// Counts this client in while it holds, for `hold`: the most clients
    /// seen inside at once is what the semaphore check compares to the size.
    async fn hold(&self, hold: Duration) {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_inside.fetch_max(now, Ordering::SeqCst);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Driver {
    /// One cycle; `inside` runs while the lock is held.
    async fn cycle(&mut self, spec: &Spec, n: u64, shared: &Shared) -> anyhow::Result<()> {
        let name = match spec.workload {
            Workload::Uncontended => format!("lt/{}/u/{}/{}", spec.run, spec.id, n % 1000),
            Workload::Hot => format!("lt/{}/hot", spec.run),
            Workload::Semaphore => format!("lt/{}/sem", spec.run),
            Workload::Reads => unreachable!("reads have their own loop"),
        };
        match self {
            Driver::Shardlock(client) => {
                let size = (spec.workload == Workload::Semaphore).then_some(spec.size);
                let wait_ms = if spec.workload == Workload::Uncontended { 0 } else { 60_000 };
                let opts = AcquireOptions { size, ttl_ms: Some(spec.ttl_ms), wait_ms, ..Default::default() };
                let grant = client.acquire(&name, opts).await?;
                if let Some(replied) = &shared.replied {
                    replied.lock().unwrap_or_else(|p| p.into_inner()).insert(grant.key.clone(), Instant::now());
                }
                shared.hold(spec.hold).await;
                client.release(&name, &grant.key).await?;
            }
            Driver::AnyNode(raw) => {
                let size = (spec.workload == Workload::Semaphore).then_some(spec.size);
                let wait_ms = if spec.workload == Workload::Uncontended { 0 } else { 60_000 };
                let req = pb::AcquireRequest {
                    name: name.clone().into_bytes(),
                    size,
                    ttl_ms: Some(spec.ttl_ms),
                    wait_ms,
                    ..Default::default()
                };
                let key = raw.acquire(req).await?.into_inner().key;
                shared.hold(spec.hold).await;
                raw.release(pb::ReleaseRequest { name: name.into_bytes(), key }).await?;
            }
            Driver::Resp(conn) => {
                let size = (spec.workload == Workload::Semaphore).then_some(spec.size);
                let wait_ms = if spec.workload == Workload::Uncontended { 0 } else { 60_000 };
                let key = format!("c{}-{n}", spec.id);
                conn.lock(&name, &key, spec.ttl_ms, wait_ms, size).await?;
                shared.hold(spec.hold).await;
                conn.unlock(&name, &key).await?;
            }
            Driver::Etcd(etcd) => {
                let key = etcd.lock(&name).await?;
                shared.hold(spec.hold).await;
                etcd.unlock(key).await?;
            }
            Driver::Redis(conn) => {
                if spec.workload != Workload::Uncontended {
                    bail!("the redis driver runs the uncontended workload only (redis locks do not wait)");
                }
                let key = format!("c{}-{n}", spec.id);
                if !conn.set_nx(&name, &key, spec.ttl_ms).await? {
                    bail!("an uncontended redis lock was held");
                }
                shared.hold(spec.hold).await;
                conn.compare_and_delete(&name, &key).await?;
            }
        }
        Ok(())
    }

    /// The reads workload: hold one lock, then check it until the deadline.
    async fn reads(&mut self, spec: &Spec, shared: &Shared) -> anyhow::Result<()> {
        let name = format!("lt/{}/r/{}", spec.run, spec.id);
        match self {
            Driver::Shardlock(client) => {
                let opts = AcquireOptions { ttl_ms: Some(spec.ttl_ms), ..Default::default() };
                let grant = client.acquire(&name, opts).await?;
                while Instant::now() < spec.deadline {
                    let t = Instant::now();
                    let ok = client.validate_fence(&name, grant.fencing_token).await.map(|r| r.valid);
                    record(shared, t, ok.map_err(anyhow::Error::from).and_then(expect_true));
                }
                client.release(&name, &grant.key).await?;
            }
            Driver::AnyNode(raw) => {
                let req = pb::AcquireRequest {
                    name: name.clone().into_bytes(),
                    ttl_ms: Some(spec.ttl_ms),
                    ..Default::default()
                };
                let grant = raw.acquire(req).await?.into_inner();
                while Instant::now() < spec.deadline {
                    let t = Instant::now();
                    let check = pb::ValidateFenceRequest {
                        name: name.clone().into_bytes(),
                        fencing_token: grant.fencing_token,
                    };
                    let ok = raw.validate_fence(check).await.map(|r| r.into_inner().valid);
                    record(shared, t, ok.map_err(anyhow::Error::from).and_then(expect_true));
                }
                raw.release(pb::ReleaseRequest { name: name.into_bytes(), key: grant.key }).await?;
            }
            Driver::Resp(conn) => {
                let token = conn.lock(&name, "reader", spec.ttl_ms, 0, None).await?;
                while Instant::now() < spec.deadline {
                    let t = Instant::now();
                    let ok = conn.validate(&name, token).await;
                    record(shared, t, ok.and_then(expect_true));
                }
                conn.unlock(&name, "reader").await?;
            }
            Driver::Redis(_) => bail!("the redis driver has no reads workload"),
            Driver::Etcd(etcd) => {
                let key = etcd.lock(&name).await?;
                while Instant::now() < spec.deadline {
                    let t = Instant::now();
                    let ok = etcd.get(&key).await;
                    record(shared, t, ok.and_then(expect_true));
                }
                etcd.unlock(key).await?;
            }
        }
        Ok(())
    }
}

fn expect_true(held: bool) -> anyhow::Result<()> {
    if held {
        Ok(())
    } else {
        bail!("the held lock reads as not held")
    }
}

fn record(shared: &Shared, started: Instant, result: anyhow::Result<()>) {
    match result {
        Ok(()) => {
            let micros = started.elapsed().as_micros() as u64;
            let _ = shared.hist.lock().unwrap_or_else(|p| p.into_inner()).record(micros.max(1));
            shared.cycles.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn client_loop(mut driver: Driver, spec: Spec, shared: Arc<Shared>) {
    if spec.workload == Workload::Reads {
        if driver.reads(&spec, &shared).await.is_err() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let mut n = 0u64;
    let mut ticks = spec.pace.map(|every| {
        // Clients start spread over one period, so the offered load is even.
        let offset = every.mul_f64(spec.id as f64 % 97.0 / 97.0);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while Instant::now() < spec.deadline {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        n += 1;
        let started = Instant::now();
        let result = driver.cycle(&spec, n, &shared).await;
        record(&shared, started, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            hist: std::sync::Mutex::new(Histogram::new(3).unwrap()),
            cycles: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            inside: AtomicUsize::new(0),
            most_inside: AtomicUsize::new(0),
            replied: None,
        }
    }

    /// Holders that hold for a while are seen together, so a semaphore
    /// that admitted more than its size would be reported.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_holds_are_seen_together() {
        let shared = Arc::new(shared());
        let holds = (0..8).map(|_| {
            let shared = shared.clone();
            tokio::spawn(async move { shared.hold(Duration::from_millis(20)).await })
        });
        for h in holds.collect::<Vec<_>>() {
            h.await.unwrap();
        }
        assert_eq!(shared.most_inside.load(Ordering::SeqCst), 8);
        assert_eq!(shared.inside.load(Ordering::SeqCst), 0);
    }
}
