//! `shardlock-loadtest`: closed-loop load against a running cluster.
//!
//! N clients, each with its own connection, spread round-robin over the
//! given nodes, loop until the duration ends (bounded: at most 10 minutes).
//! Workloads:
//! - `uncontended`: try-lock + release on names no other client uses;
//! - `hot`: every client acquires one lock (blocking) and releases it at once:
//!   each cycle is one hand-off;
//! - `semaphore`: M clients contend for a semaphore of size S; the tool checks
//!   that never more than S clients hold at once.
//! It prints cycles/s, latency percentiles of a whole cycle (from an
//! HdrHistogram), errors, and the WAL fsyncs per cycle the nodes reported.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use shardlock::client::{AcquireOptions, Client};

#[derive(Parser, Clone)]
#[command(name = "shardlock-loadtest", about = "Closed-loop load against a shardlock cluster")]
struct Args {
    /// Client addresses of the nodes, comma-separated.
    #[arg(long, default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", value_delimiter = ',')]
    addrs: Vec<String>,
    /// uncontended, hot, semaphore, or all.
    #[arg(long, default_value = "all")]
    workload: String,
    /// Concurrent clients (uncontended and hot).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Semaphore size.
    #[arg(long, default_value_t = 8)]
    size: u32,
    /// Semaphore contenders.
    #[arg(long, default_value_t = 64)]
    contenders: usize,
    /// Lease TTL of every grant, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    ttl_ms: u64,
}

#[derive(Clone, Copy)]
enum Workload {
    Uncontended,
    Hot,
    Semaphore { size: u32 },
}

struct Shared {
    hist: std::sync::Mutex<Histogram<u64>>,
    cycles: AtomicU64,
    errors: AtomicU64,
    inside: AtomicUsize,
    most_inside: AtomicUsize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.duration == 0 || args.duration > 600 {
        bail!("--duration must be 1 to 600 seconds");
    }
    let run = |name: &str| args.workload == "all" || args.workload == name;
    println!("| workload | clients | cycles/s | p50 ms | p99 ms | p99.9 ms | errors | fsyncs/cycle | notes |");
    println!("|---|---|---|---|---|---|---|---|---|");
    if run("uncontended") {
        report(&args, "uncontended acquire+release", args.clients, Workload::Uncontended).await?;
    }
    if run("hot") {
        report(&args, "one hot lock (hand-offs)", args.clients.min(16), Workload::Hot).await?;
    }
    if run("semaphore") {
        let w = Workload::Semaphore { size: args.size };
        report(&args, &format!("semaphore size {}", args.size), args.contenders, w).await?;
    }
    Ok(())
}

async fn wal_syncs(addrs: &[String]) -> anyhow::Result<u64> {
    let mut total = 0;
    for addr in addrs {
        let status = Client::connect(addr).await?.status().await.with_context(|| format!("status of {addr}"))?;
        total += status.wal_syncs;
    }
    Ok(total)
}

async fn report(args: &Args, label: &str, clients: usize, workload: Workload) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        hist: std::sync::Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        cycles: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        inside: AtomicUsize::new(0),
        most_inside: AtomicUsize::new(0),
    });
    let syncs_before = wal_syncs(&args.addrs).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = Client::connect(&args.addrs[i % args.addrs.len()]).await?;
        let (shared, ttl) = (shared.clone(), args.ttl_ms);
        tasks.push(tokio::spawn(client_loop(client, i, workload, ttl, deadline, shared)));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let syncs = wal_syncs(&args.addrs).await? - syncs_before;
    let hist = shared.hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let cycles = shared.cycles.load(Ordering::Relaxed);
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let notes = match workload {
        Workload::Semaphore { size } => {
            let most = shared.most_inside.load(Ordering::Relaxed);
            format!("max holders seen {most} (size {size}){}", if most > size as usize { " VIOLATION" } else { "" })
        }
        _ => String::new(),
    };
    println!(
        "| {label} | {clients} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.3} | {notes} |",
        cycles as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        shared.errors.load(Ordering::Relaxed),
        syncs as f64 / cycles.max(1) as f64,
    );
    Ok(())
}

async fn client_loop(
    client: Client,
    id: usize,
    workload: Workload,
    ttl_ms: u64,
    deadline: Instant,
    shared: Arc<Shared>,
) {
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let (name, opts) = match workload {
            Workload::Uncontended => (format!("lt/u/{id}/{}", n % 1000), AcquireOptions::default()),
            Workload::Hot => ("lt/hot".to_owned(), AcquireOptions { wait_ms: 30_000, ..Default::default() }),
            Workload::Semaphore { size } => {
                ("lt/sem".to_owned(), AcquireOptions { size: Some(size), wait_ms: 30_000, ..Default::default() })
            }
        };
        let opts = AcquireOptions { ttl_ms: Some(ttl_ms), ..opts };
        let start = Instant::now();
        let grant = match client.acquire(&name, opts).await {
            Ok(grant) => grant,
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let now = shared.inside.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_inside.fetch_max(now, Ordering::SeqCst);
        shared.inside.fetch_sub(1, Ordering::SeqCst);
        if client.release(&name, &grant.key).await.is_err() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let micros = start.elapsed().as_micros() as u64;
        let _ = shared.hist.lock().unwrap_or_else(|p| p.into_inner()).record(micros.max(1));
        shared.cycles.fetch_add(1, Ordering::Relaxed);
    }
}
