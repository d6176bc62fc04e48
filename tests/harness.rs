//! A cluster of real `shardlock serve` processes on loopback, for tests.
//!
//! Each node gets ephemeral ports on 127.0.0.1 and its own data directory
//! in a temporary directory (kept, and named, when the test fails).
//! Processes are killed by pid when the cluster is dropped. Tests wait on
//! observable state with [`wait_for`] (bounded by a deadline), never on
//! fixed sleeps. Clusters run one at a time: their Raft timeouts are short
//! and two cores are shared. A cluster started with
//! [`Cluster::start_partitionable`] routes every node-to-node connection
//! through fault proxies ([`Links`]), closed with the cluster.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shardlock::client::{Client, ClientOptions};
use shardlock::proto::v1::lock_client::LockClient;
use shardlock::routing::{group_of, preferred_leader};
use tonic::transport::Channel;

use crate::links::Links;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct NodeProc {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub groups: u32,
    /// How the tests' clients reach the nodes (token, TLS).
    pub options: ClientOptions,
    /// TOML appended to every node's config.
    extra: String,
    /// The fault proxies between the nodes, when the cluster has them.
    pub links: Option<Links>,
    dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
    }
}

impl Cluster {
    /// Starts `n` nodes hosting `groups` groups and waits until every group
    /// has a leader that every node knows.
    pub async fn start(n: usize, groups: u32) -> Self {
        Self::start_with(n, groups, "").await
    }

    /// Like `start`, with `extra` TOML tables appended to every node's config
    /// (a `token = "..."` line in it is also used by the tests' clients).
    pub async fn start_with(n: usize, groups: u32, extra: &str) -> Self {
        let token =
            extra.lines().find_map(|l| l.strip_prefix("token = \"")).map(|t| t.trim_end_matches('"').to_owned());
        Self::start_with_options(n, groups, extra, ClientOptions { token, tls: None }).await
    }

    /// Like `start_with`, the tests' clients connecting with `options`.
    pub async fn start_with_options(n: usize, groups: u32, extra: &str, options: ClientOptions) -> Self {
        Self::start_inner(n, groups, extra, options, false).await
    }

    /// Like `start`, every node dialling every other through a fault proxy
    /// (see `links`).
    pub async fn start_partitionable(n: usize, groups: u32, extra: &str) -> Self {
        Self::start_inner(n, groups, extra, ClientOptions::default(), true).await
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> std::path::PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    async fn start_inner(n: usize, groups: u32, extra: &str, options: ClientOptions, proxied: bool) -> Self {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().expect("tempdir");
        let addrs: Vec<(String, String)> =
            (0..n).map(|_| (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()))).collect();
        let peers: Vec<(u64, String)> = (1..).zip(addrs.iter().map(|(_, p)| p.clone())).collect();
        let links = if proxied { Some(Links::start(&peers).await) } else { None };
        let extra = extra.to_owned();
        let mut cluster = Self { nodes: Vec::new(), groups, options, extra, links, dir, _turn: turn };
        for (client_addr, peer_addr) in addrs {
            cluster.add_config(client_addr, peer_addr, true);
        }
        for id in 1..=n as u64 {
            cluster.spawn(id);
        }
        cluster.wait_ready().await;
        cluster
    }

    /// Adds one more node and writes its config: founders (`bootstrap`) all
    /// list every founder; a joiner lists the cluster and itself.
    fn add_config(&mut self, client_addr: String, peer_addr: String, bootstrap: bool) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let config = self.dir.path().join(format!("node{id}.toml"));
        let log = self.dir.path().join(format!("node{id}.log"));
        self.nodes.push(NodeProc { id, client_addr, peer_addr, config, log, child: None });
        let members: Vec<(u64, String, String)> =
            self.nodes.iter().map(|n| (n.id, n.client_addr.clone(), n.peer_addr.clone())).collect();
        let rewrite = if bootstrap { 1..=id } else { id..=id };
        for n in rewrite {
            self.write_config(n, bootstrap, &members);
        }
        id
    }

    fn write_config(&self, id: u64, bootstrap: bool, members: &[(u64, String, String)]) {
        let node = self.node(id);
        let list: String = members
            .iter()
            .map(|(m, c, p)| format!("[[initial_cluster]]\nid = {m}\nclient_addr = \"{c}\"\npeer_addr = \"{p}\"\n\n"))
            .collect();
        let data = self.dir.path().join(format!("node{id}"));
        let (root, tables) = split_root(&self.extra);
        // Raft keys of `extra` join the harness's own [raft] table.
        let (raft, tables) = match tables.strip_prefix("[raft]\n") {
            Some(rest) => rest.split_at(rest.find("\n[").map_or(rest.len(), |i| i + 1)),
            None => ("", tables),
        };
        let dial = self.links.as_ref().map(|l| format!("dial = {}\n", l.dial_of(id))).unwrap_or_default();
        let text = format!(
            "{root}node_id = {id}\ndata_dir = \"{}\"\nclient_addr = \"{}\"\npeer_addr = \"{}\"\n\
             groups = {}\nidle_lock_grace_ms = 2000\nbootstrap = {bootstrap}\n\n{list}\
             [raft]\nheartbeat_interval_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n\
             snapshot_every_entries = 50\n{dial}{raft}{tables}",
            data.display(),
            node.client_addr,
            node.peer_addr,
            self.groups,
        );
        std::fs::write(&node.config, text).expect("write config");
    }

    /// Starts one more node that joins the running cluster (bootstrap off);
    /// an operator still has to add it (`add_node`).
    pub async fn spawn_joiner(&mut self) -> u64 {
        assert!(self.links.is_none(), "joiners of a partitionable cluster are not supported");
        let (c, p) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
        let id = self.add_config(c, p, false);
        self.restart(id).await;
        id
    }

    pub fn peer_addr(&self, id: u64) -> String {
        self.node(id).peer_addr.clone()
    }

    fn node(&self, id: u64) -> &NodeProc {
        &self.nodes[id as usize - 1]
    }

    fn spawn(&mut self, id: u64) {
        let node = &mut self.nodes[id as usize - 1];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shardlock"));
        // The node's config is its file alone: no SHARDLOCK_* from the test's environment.
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SHARDLOCK_")) {
            command.env_remove(name);
        }
        let child = command
            .args(["serve", "--config"])
            .arg(&node.config)
            // Node logs (stdout and stderr) go to the node's log file; set
            // TEST_NODE_LOG (a RUST_LOG filter) for more than warnings.
            .env("RUST_LOG", std::env::var("TEST_NODE_LOG").unwrap_or("warn".into()))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn shardlock serve");
        node.child = Some(child);
    }

    /// SIGKILLs node `id` (by pid) and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[id as usize - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes node `id` (SIGSTOP) or thaws it (SIGCONT), by pid.
    pub fn pause(&self, id: u64, frozen: bool) {
        if let Some(child) = &self.nodes[id as usize - 1].child {
            let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: signals our own child process by its pid.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// Sends SIGTERM to node `id` (by pid) and waits for it to exit; returns
    /// how long it took.
    pub async fn terminate(&mut self, id: u64) -> Duration {
        let started = Instant::now();
        let Some(mut child) = self.nodes[id as usize - 1].child.take() else { return Duration::ZERO };
        // SAFETY: signals our own child process by its pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if child.try_wait().ok().flatten().is_some() {
                return started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {id} did not exit within 60 s of SIGTERM");
            }
        }
    }

    /// Starts node `id` again on its data directory.
    pub async fn restart(&mut self, id: u64) {
        self.spawn(id);
        let addr = self.node(id).client_addr.clone();
        wait_for("a restarted node to answer", Duration::from_secs(20), || {
            let addr = addr.clone();
            let options = self.options.clone();
            async move { Client::connect_opts(&[addr.as_str()], &options).await.ok() }
        })
        .await;
    }

    pub fn addr(&self, id: u64) -> String {
        self.node(id).client_addr.clone()
    }

    pub fn alive(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    pub async fn client(&self, id: u64) -> Client {
        Client::connect_opts(&[self.addr(id).as_str()], &self.options).await.expect("connect to node")
    }

    /// The leader of every group as node `id` sees it (0 = unknown).
    pub async fn leaders(&self, id: u64) -> Option<Vec<u64>> {
        let client = Client::connect_opts(&[self.addr(id).as_str()], &self.options).await.ok()?;
        let status = client.status().await.ok()?;
        Some(status.group_status.iter().map(|g| g.leader_id).collect())
    }

    /// Waits until every live node knows the same live leader for every group.
    pub async fn wait_ready(&self) {
        let alive = self.alive();
        wait_for("every group to have a leader known to every node", Duration::from_secs(30), || async {
            let mut seen = None;
            for id in &alive {
                let leaders = self.leaders(*id).await?;
                if leaders.iter().any(|l| !alive.contains(l)) || seen.as_ref().is_some_and(|s| s != &leaders) {
                    return None;
                }
                seen = Some(leaders);
            }
            seen
        })
        .await;
    }

    /// Waits until every group is led by its preferred node (as node 1 sees
    /// it) and returns the leaders.
    pub async fn wait_balanced(&self) -> Vec<u64> {
        let voters: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        let preferred: Vec<u64> = (0..self.groups).map(|g| preferred_leader(g, &voters).unwrap()).collect();
        wait_for("leaders on their preferred nodes", Duration::from_secs(30), || async {
            self.leaders(1).await.filter(|l| *l == preferred)
        })
        .await
    }

    /// A plain gRPC client pinned to node `id` (no routing, no retries).
    pub async fn raw(&self, id: u64) -> LockClient<Channel> {
        LockClient::connect(format!("http://{}", self.addr(id))).await.expect("connect")
    }

    /// The node leading the group of lock `name`, as node `via` sees it.
    pub async fn leader_of(&self, name: &str, via: u64) -> u64 {
        let group = group_of(name.as_bytes(), self.groups) as usize;
        wait_for("a leader for the lock's group", Duration::from_secs(20), || async {
            let leader = self.leaders(via).await?.get(group).copied()?;
            (leader != 0 && self.alive().contains(&leader)).then_some(leader)
        })
        .await
    }

    /// The last lines of node `id`'s log, for failure messages.
    /// Node `id`'s whole log.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// Panics anywhere in node `id`'s log, each with the line after it.
    pub fn panics(&self, id: u64) -> Vec<String> {
        let log = self.log(id);
        let lines: Vec<&str> = log.lines().collect();
        (0..lines.len())
            .filter(|&i| lines[i].contains("panicked"))
            .map(|i| lines[i..(i + 2).min(lines.len())].join("\n"))
            .collect()
    }

    pub fn log_tail(&self, id: u64) -> String {
        let text = std::fs::read_to_string(&self.node(id).log).unwrap_or_default();
        text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // SAFETY: a frozen child must be thawed to die of SIGKILL promptly.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            // A failed test keeps its nodes' configs, data and logs.
            if let Ok(empty) = tempfile::tempdir() {
                let kept = std::mem::replace(&mut self.dir, empty).keep();
                eprintln!("the failed test's node logs are in {}", kept.display());
            }
        }
    }
}

/// One HTTP/1.1 request to `addr`; returns the status and the body.
pub async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect for http");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send http request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read http response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Splits extra config TOML into its top-level keys (the lines before its
/// first `[table]`), which must precede every table, and the rest.
fn split_root(extra: &str) -> (&str, &str) {
    let at = if extra.trim_start().starts_with('[') { 0 } else { extra.find("\n[").map_or(extra.len(), |i| i + 1) };
    extra.split_at(at)
}
