//! The subcommands: each connects with the Rust client and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use shardlock::client::{AcquireOptions, Client, ClientOptions};
use shardlock::config::Config;
use shardlock::lock::Mode;
use shardlock::node::Node;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::output::{json, table};
use super::supervise::{exit_code, supervise, Ended};
use super::{LockArgs, Target};

pub const TEMPLATE: &str = include_str!("../../../config/shardlock.example.toml");

/// Exit code of `lock` (and `elect`) when the lock (leadership) was lost
/// while the command ran.
pub const EXIT_LOCK_LOST: u8 = 75;

#[derive(Args)]
pub struct ServeArgs {
    /// Config file (TOML); flags below override it.
    #[arg(long, env = "SHARDLOCK_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long)]
    node_id: Option<u64>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    client_addr: Option<String>,
    #[arg(long)]
    peer_addr: Option<String>,
    /// Log format: human (default) or json.
    #[arg(long, env = "SHARDLOCK_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
}

pub async fn connect(target: &Target) -> anyhow::Result<Client> {
    let tls = match &target.ca_file {
        Some(ca) => Some(shardlock::tls::client(ca, target.cert_file.as_deref(), target.key_file.as_deref())?),
        None => None,
    };
    let opts = ClientOptions { token: target.token.clone(), tls };
    Ok(Client::connect_opts(&[target.addr.as_str()], &opts).await?)
}

fn options(lock: &LockArgs) -> anyhow::Result<AcquireOptions> {
    let mode = Mode::parse(&lock.mode).ok_or_else(|| anyhow::anyhow!("--mode is exclusive or shared"))?;
    Ok(AcquireOptions {
        size: lock.size,
        permits: lock.permits,
        ttl_ms: lock.ttl,
        wait_ms: lock.wait,
        key: lock.key.clone(),
        mode,
        value: lock.value.as_ref().map(|v| v.as_bytes().to_vec()),
    })
}

/// A value as the CLI prints it: the text, or its bytes in hex.
pub fn shown(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => value.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn mode_name(mode: i32) -> &'static str {
    if mode == shardlock::proto::v1::Mode::Shared as i32 {
        "shared"
    } else {
        "exclusive"
    }
}

/// The config a node serves with: defaults < file < `SHARDLOCK_*`
/// environment < flags, validated.
pub fn serve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load_layered(args.config.as_deref(), std::env::vars())?;
    if let Some(v) = args.node_id {
        config.node_id = v;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = &args.client_addr {
        config.client_addr = v.clone();
    }
    if let Some(v) = &args.peer_addr {
        config.peer_addr = v.clone();
    }
    config.validate()?;
    Ok(config)
}

impl ServeArgs {
    /// Whether the node logs JSON lines.
    pub fn json_logs(&self) -> bool {
        self.log_format == "json"
    }
}

/// Runs a node with `config` until SIGTERM or ^C, then drains it.
pub async fn serve(config: Config, json: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=error".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        logs.json().flatten_event(true).with_current_span(true).init();
    } else {
        logs.init();
    }
    let data_dir = config.data_dir.clone();
    // Before the start lines: a signal right after them must drain, not kill.
    let signals = [SignalKind::terminate(), SignalKind::interrupt()].map(|kind| signal(kind).ok());
    let node = Node::start(config).await?;
    println!("shardlock node listening: client={} peer={}", node.client_addr(), node.peer_addr());
    println!("  data in {}", data_dir.display());
    println!("  try it: shardlock lock demo --addr {} -- echo hi", node.client_addr());
    wait_for_signal(signals).await;
    let report = node.drain(Duration::from_secs(15)).await;
    eprintln!(
        "shardlock: drained in {} ms: moved {} of {} group leaders; stopping",
        report.took.as_millis(),
        // A node that won elections while draining (no peer to hand to) may lead more at the end.
        report.led.saturating_sub(report.still_leading),
        report.led
    );
    node.shutdown().await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT (^C), on the streams the caller registered.
async fn wait_for_signal(signals: [Option<Signal>; 2]) {
    let waits: Vec<_> = signals.into_iter().flatten().map(|mut s| Box::pin(async move { s.recv().await })).collect();
    if waits.is_empty() {
        std::future::pending::<()>().await;
    }
    futures::future::select_all(waits).await;
}

pub async fn lock(target: &Target, name: &str, lock: &LockArgs, cmd: &[String]) -> anyhow::Result<ExitCode> {
    let client = connect(target).await?;
    let guard = client.lock(name, options(lock)?).await?;
    let env = [
        ("SHARDLOCK_NAME", name.to_owned()),
        ("SHARDLOCK_KEY", guard.key().to_owned()),
        ("SHARDLOCK_FENCING_TOKEN", guard.fencing_token().to_string()),
        ("SHARDLOCK_PERMITS", guard.permits().to_string()),
    ];
    match supervise(cmd, &env, guard.lost()).await? {
        Ended::Exited(status) => {
            guard.release().await?;
            Ok(ExitCode::from(exit_code(status)))
        }
        Ended::Stopped => {
            drop(guard);
            Ok(ExitCode::from(EXIT_LOCK_LOST))
        }
    }
}

pub async fn acquire(target: &Target, name: &str, lock: &LockArgs) -> anyhow::Result<()> {
    let grant = connect(target).await?.acquire(name, options(lock)?).await?;
    let value = grant.value.as_deref().map(shown);
    if target.json {
        json(&json!({"name": name, "key": grant.key, "fencing_token": grant.fencing_token,
            "permits": grant.permits, "ttl_ms": grant.ttl_ms, "size": grant.size,
            "mode": mode_name(grant.mode), "value": value}));
    } else {
        let value = value.map(|v| format!(" value={v}")).unwrap_or_default();
        println!(
            "key={} fencing_token={} permits={} ttl_ms={} mode={}{value}",
            grant.key,
            grant.fencing_token,
            grant.permits,
            grant.ttl_ms,
            mode_name(grant.mode)
        );
    }
    Ok(())
}

pub async fn set_value(target: &Target, name: &str, key: &str, value: Option<&str>) -> anyhow::Result<()> {
    let set = connect(target).await?.set_value(name, key, value.map(|v| v.as_bytes().to_vec())).await?;
    if target.json {
        json(&json!({"name": name, "key": key, "fencing_token": set.fencing_token, "value": value}));
    } else {
        println!("value {}", if value.is_some() { "set" } else { "cleared" });
    }
    Ok(())
}

pub async fn downgrade(target: &Target, name: &str, key: &str) -> anyhow::Result<()> {
    let done = connect(target).await?.downgrade(name, key).await?;
    if target.json {
        json(&json!({"name": name, "key": key, "fencing_token": done.fencing_token, "mode": "shared"}));
    } else {
        println!("key={key} fencing_token={} mode=shared", done.fencing_token);
    }
    Ok(())
}

pub async fn unlock(target: &Target, name: &str, key: &str) -> anyhow::Result<()> {
    connect(target).await?.release(name, key).await?;
    if target.json {
        json(&json!({"name": name, "released": true}));
    } else {
        println!("released");
    }
    Ok(())
}

pub async fn describe(target: &Target, name: &str) -> anyhow::Result<()> {
    let resp = connect(target).await?.describe(name).await?;
    let Some(lock) = resp.lock else {
        if target.json {
            json(&json!({"name": name, "lock": null}));
        } else {
            println!("no lock named {name:?}");
        }
        return Ok(());
    };
    if target.json {
        let holders: Vec<_> = lock
            .holders
            .iter()
            .map(|h| {
                json!({"key": h.key, "permits": h.permits,
            "fencing_token": h.fencing_token, "ttl_ms": h.ttl_ms, "remaining_ttl_ms": h.remaining_ttl_ms,
            "mode": mode_name(h.mode), "value": h.value.as_deref().map(shown)})
            })
            .collect();
        let waiters: Vec<_> = lock
            .waiters
            .iter()
            .map(|w| {
                json!({"key": w.key, "permits": w.permits,
            "position": w.position, "wait_ms": w.wait_ms, "mode": mode_name(w.mode)})
            })
            .collect();
        json(&json!({"name": name, "size": lock.size, "permits_held": lock.permits_held,
            "holders": holders, "waiters": waiters}));
        return Ok(());
    }
    println!("lock {name}  size {}  held {}", lock.size, lock.permits_held);
    let mut rows: Vec<Vec<String>> = lock
        .holders
        .iter()
        .map(|h| {
            vec![
                "holder".into(),
                h.key.clone(),
                h.permits.to_string(),
                mode_name(h.mode).into(),
                h.fencing_token.to_string(),
                format!("{}ms", h.remaining_ttl_ms),
                h.value.as_deref().map(shown).unwrap_or_default(),
            ]
        })
        .collect();
    rows.extend(lock.waiters.iter().map(|w| {
        let (role, permits, mode) = (format!("waiter #{}", w.position), w.permits.to_string(), mode_name(w.mode));
        vec![role, w.key.clone(), permits, mode.into(), "-".into(), "-".into(), String::new()]
    }));
    table(&["ROLE", "KEY", "PERMITS", "MODE", "TOKEN", "TTL LEFT", "VALUE"], &rows);
    Ok(())
}

pub async fn list(target: &Target, prefix: &str, limit: u32) -> anyhow::Result<()> {
    let resp = connect(target).await?.list(prefix, limit, Vec::new()).await?;
    let names: Vec<String> = resp.locks.iter().map(|l| String::from_utf8_lossy(&l.name).into_owned()).collect();
    if target.json {
        let locks: Vec<_> = resp
            .locks
            .iter()
            .zip(&names)
            .map(|(l, n)| {
                let values: Vec<_> = l.values.iter().map(|v| json!({"key": v.key, "value": shown(&v.value)})).collect();
                json!({"name": n, "size": l.size, "permits_held": l.permits_held, "holders": l.holders,
                    "waiters": l.waiters, "mode": l.mode.map(mode_name), "values": values})
            })
            .collect();
        json(&json!({"locks": locks, "more": !resp.next_page_token.is_empty()}));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = resp
        .locks
        .iter()
        .zip(&names)
        .map(|(l, n)| {
            vec![
                n.clone(),
                l.size.to_string(),
                l.permits_held.to_string(),
                l.holders.to_string(),
                l.waiters.to_string(),
                l.mode.map_or("-", mode_name).to_owned(),
            ]
        })
        .collect();
    table(&["NAME", "SIZE", "HELD", "HOLDERS", "WAITERS", "MODE"], &rows);
    if !resp.next_page_token.is_empty() {
        println!("(more locks: raise --limit or narrow the prefix)");
    }
    Ok(())
}

pub async fn status(target: &Target) -> anyhow::Result<()> {
    let status = connect(target).await?.status().await?;
    let leaderless = status.group_status.iter().filter(|g| g.leader_id == 0).count();
    if target.json {
        let nodes: Vec<_> = status
            .nodes
            .iter()
            .map(|n| {
                json!({"node_id": n.node_id, "client_addr": n.client_addr,
            "peer_addr": n.peer_addr, "leads": status.group_status.iter().filter(|g| g.leader_id == n.node_id).count()})
            })
            .collect();
        let groups: Vec<_> = status
            .group_status
            .iter()
            .map(|g| {
                json!({"group": g.group, "leader_id": g.leader_id,
            "term": g.term, "applied_index": g.applied_index, "locks": g.locks,
            "voters": g.voters, "target": g.target, "hosted": g.hosted,
            "moving": g.hosted && g.voters != g.target, "step": (!g.moving.is_empty()).then_some(&g.moving)})
            })
            .collect();
        let moving = status.group_status.iter().filter(|g| g.hosted && g.voters != g.target).count();
        json(&json!({"node_id": status.node_id, "removed": status.removed, "groups": status.groups,
            "healthy": leaderless == 0 && !status.removed, "moving": moving,
            "groups_without_leader": leaderless, "nodes": nodes, "group_status": groups}));
        return Ok(());
    }
    if status.removed {
        println!("node {} was removed from the cluster: it serves nothing and is safe to stop", status.node_id);
    } else {
        let health =
            if leaderless == 0 { "healthy".to_owned() } else { format!("{leaderless} groups without a leader") };
        println!("node {} sees {} groups: {health}", status.node_id, status.groups);
    }
    let moving = status.group_status.iter().filter(|g| g.hosted && g.voters != g.target).count();
    if moving > 0 {
        println!("{moving} of the groups here are moving to their placement");
    }
    for g in status.group_status.iter().filter(|g| !g.moving.is_empty()) {
        println!("  group {} (led here): {}", g.group, g.moving);
    }
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            let leads = status.group_status.iter().filter(|g| g.leader_id == n.node_id).count();
            vec![n.node_id.to_string(), n.client_addr.clone(), n.peer_addr.clone(), leads.to_string()]
        })
        .collect();
    table(&["NODE", "CLIENT", "PEER", "LEADS"], &rows);
    Ok(())
}

pub async fn force_release(target: &Target, name: &str, key: Option<&str>) -> anyhow::Result<()> {
    let resp = connect(target).await?.force_release(name, key).await?;
    if target.json {
        json(&json!({"name": name, "released": resp.released}));
    } else {
        println!("released {} holder(s)", resp.released);
    }
    Ok(())
}

pub async fn add_node(target: &Target, id: u64, client_addr: &str, peer_addr: &str) -> anyhow::Result<()> {
    let groups = connect(target).await?.add_node(id, client_addr, peer_addr).await?;
    if target.json {
        json(&json!({"node_id": id, "voter_in_groups": groups}));
    } else {
        println!("node {id} is in the cluster; placement gives it {groups} group(s), moved by their leaders (`shardlock status` shows what still moves)");
    }
    Ok(())
}

pub async fn remove_node(target: &Target, id: u64) -> anyhow::Result<()> {
    let groups = connect(target).await?.remove_node(id).await?;
    if target.json {
        json(&json!({"node_id": id, "removed_from_groups": groups}));
    } else {
        println!("node {id} left the cluster; its {groups} group(s) move to other nodes: stop it once `shardlock status` shows none moving");
    }
    Ok(())
}

pub async fn most_contended(target: &Target, limit: u32) -> anyhow::Result<()> {
    let locks = connect(target).await?.most_contended(limit).await?;
    if target.json {
        let locks: Vec<_> = locks.iter().map(|(name, queued)| json!({"name": name, "queued": queued})).collect();
        json(&json!({ "locks": locks }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = locks.iter().map(|(name, queued)| vec![name.clone(), queued.to_string()]).collect();
    table(&["NAME", "QUEUED"], &rows);
    Ok(())
}

pub fn config_check(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    print!("{}", toml::to_string(&config)?);
    Ok(())
}
