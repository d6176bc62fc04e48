//! `shardlock-loadtest state`: what held locks and waiters cost the nodes.
//!
//! Acquires `--locks` locks (`state/<i>`, one holder each, a one-hour
//! lease) with `--clients` requests in flight, then queues `--waiters`
//! blocking acquires on the first held locks and keeps them waiting. After
//! each phase it reads every node's resident memory (`VmRSS` of the
//! `--pids`) and prints bytes per held lock and per waiter, per node (every
//! node holds a replica of every lock). The waiters are cancelled at the
//! end (their requests are dropped); the held locks stay, for a restart
//! measurement (`loadtest/state.sh`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use shardlock::client::{AcquireOptions, Client};

/// Resident memory of `pid` in bytes (0 when it is gone).
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024
}

fn rss_all(pids: &[u32]) -> Vec<u64> {
    pids.iter().map(|p| rss(*p)).collect()
}

fn per_item(before: &[u64], after: &[u64], n: usize) -> String {
    let each: Vec<String> = before
        .iter()
        .zip(after)
        .map(|(b, a)| format!("{:.0}", a.saturating_sub(*b) as f64 / n.max(1) as f64))
        .collect();
    each.join(" / ")
}

fn mib(v: &[u64]) -> String {
    v.iter().map(|b| format!("{:.0}", *b as f64 / 1048576.0)).collect::<Vec<_>>().join(" / ")
}

pub async fn run(addrs: &[String], pids: &[u32], locks: usize, waiters: usize, in_flight: usize) -> anyhow::Result<()> {
    if pids.is_empty() {
        bail!("--pids is needed to read the nodes' memory");
    }
    let seeds: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let client = Client::connect_any(&seeds).await.context("connect")?;
    let base = rss_all(pids);
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let fills = futures::stream::iter(0..locks).map(|i| {
        let (client, done) = (client.clone(), done.clone());
        async move {
            let opts = AcquireOptions { ttl_ms: Some(3_600_000), ..Default::default() };
            let r = client.acquire(&format!("state/{i}"), opts).await;
            done.fetch_add(1, Ordering::Relaxed);
            r.map(|_| ())
        }
    });
    let failed = fills.buffer_unordered(in_flight.max(1)).filter(|r| futures::future::ready(r.is_err())).count().await;
    let took = started.elapsed();
    if failed > 0 {
        bail!("{failed} of {locks} acquires failed");
    }
    // Let the followers apply the last entries before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await; // settling, not synchronisation: memory has no state to wait on
    let held = rss_all(pids);
    println!("| phase | count | RSS MiB per node | bytes each, per node |");
    println!("|---|---|---|---|");
    println!("| empty cluster | 0 | {} | |", mib(&base));
    println!(
        "| held locks (acquired in {:.1} s, {:.0}/s) | {locks} | {} | {} |",
        took.as_secs_f64(),
        locks as f64 / took.as_secs_f64(),
        mib(&held),
        per_item(&base, &held, locks)
    );
    if waiters == 0 {
        return Ok(());
    }
    // Waiters: blocking acquires on held locks, kept open.
    let mut queued = Vec::with_capacity(waiters);
    let conns = (waiters / 500).max(1);
    let mut pool = Vec::new();
    for _ in 0..conns {
        pool.push(Client::connect_any(&seeds).await.context("connect")?);
    }
    for i in 0..waiters {
        let c = pool[i % conns].clone();
        let name = format!("state/{}", i % locks.max(1));
        queued.push(tokio::spawn(async move {
            let opts = AcquireOptions { ttl_ms: Some(60_000), wait_ms: 3_600_000, ..Default::default() };
            c.acquire(&name, opts).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting = count_waiters(&client, waiters.min(locks)).await;
        if waiting >= waiters.min(locks) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // polling interval
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // settling before the memory reading
    let with_waiters = rss_all(pids);
    println!(
        "| waiters on held locks | {waiters} | {} | {} |",
        mib(&with_waiters),
        per_item(&held, &with_waiters, waiters)
    );
    for q in queued {
        q.abort();
    }
    Ok(())
}

/// How many of the first `n` held locks have a waiter (sampled: every 97th).
async fn count_waiters(client: &Client, n: usize) -> usize {
    let mut seen = 0;
    let mut sampled = 0;
    for i in (0..n).step_by(97) {
        sampled += 1;
        if let Ok(d) = client.describe(&format!("state/{i}")).await {
            if d.lock.is_some_and(|l| !l.waiters.is_empty()) {
                seen += 1;
            }
        }
    }
    if sampled == 0 {
        return n;
    }
    seen * n / sampled
}
