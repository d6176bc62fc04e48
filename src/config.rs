//! The one configuration struct of a shardlock node.
//!
//! Invariants: every field has a default, so an empty file (or none) gives a
//! working single-node setup on 127.0.0.1; unknown keys are refused, so a
//! typo is an error rather than a silent default; [`Config::validate`] runs
//! once, at load, and everything after it may rely on the checked bounds.
//! Units are in the names (`_ms`, `_bytes`). `config/shardlock.example.toml`
//! documents every key and a test keeps it equal to the defaults.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lock::Limits;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's id, unique in the cluster, at least 1.
    pub node_id: u64,
    /// Where the node keeps its RocksDB and its identity file.
    pub data_dir: PathBuf,
    /// gRPC and REST for clients.
    pub client_addr: String,
    /// Raft traffic between nodes.
    pub peer_addr: String,
    /// Number of Raft groups; fixed when the cluster is created.
    pub groups: u32,
    /// How many nodes hold each group. With this many nodes or fewer,
    /// every node holds every group; with more, placement
    /// (`routing::Placement`) spreads the groups over the nodes.
    pub replication_factor: usize,
    /// The voters of a new cluster; empty means a single node of itself.
    pub initial_cluster: Vec<Peer>,
    /// Whether this node initializes the groups of a new cluster with
    /// `initial_cluster`. False for a node that joins a running cluster
    /// (then `shardlock admin add-node` makes it a voter).
    pub bootstrap: bool,
    /// Lease TTL of an acquire that names none.
    pub default_ttl_ms: u64,
    /// How long an idle lock is kept before the leader collects it.
    pub idle_lock_grace_ms: u64,
    /// Page size of a List that names none, and the largest page allowed.
    pub default_list_page: u32,
    pub max_list_page: u32,
    /// Largest gRPC message accepted.
    pub max_message_bytes: usize,
    /// Concurrent HTTP/2 streams (calls) per client connection.
    pub max_concurrent_streams: u32,
    /// Client connections open at once on one node; more are answered
    /// `UNAVAILABLE` and closed.
    pub max_connections: usize,
    /// How long a new client connection may take to finish its TLS handshake
    /// and say which HTTP version it speaks, and an HTTP/1 client to send a
    /// request's headers, before it is disconnected.
    pub header_read_timeout_ms: u64,
    /// How long a request's body may take to arrive after its headers
    /// (every call but the Session stream).
    pub body_read_timeout_ms: u64,
    /// Keepalive TTL of a session that names none.
    pub session_ttl_ms: u64,
    /// How long an ldlm REST session (cookie) lives without a call.
    pub ldlm_rest_session_idle_ms: u64,
    /// Most sessions open on one node.
    pub max_sessions: usize,
    /// Watch events each group keeps on a node for watches to resume from
    /// (at least 1 is kept).
    pub watch_history: usize,
    /// Watch streams open at once on one node.
    pub max_watches: usize,
    /// Threads of the node's async runtime: 1 runs every task on one thread
    /// (beside the WAL syncer), N > 1 runs N worker threads, 0 one per core.
    pub runtime_threads: usize,
    pub raft: RaftConfig,
    pub storage: StorageConfig,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
}

/// TLS for both ports; on when `cert_file` is set (see `crate::tls`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This node's certificate chain and key (PEM), for both ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The CA that signed every node's certificate: peers verify each other
    /// with it (mutual TLS on the peer port). Required with `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// When set, clients must present a certificate signed by this CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// Client authentication with a shared secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The token clients must present; prefer `token_file` or the
    /// `SHARDLOCK_AUTH__TOKEN` environment variable to keep it out of files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file holding the token (trailing whitespace ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// A secret: never printed, logged or serialised in clear.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// One member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A group snapshots its lock table every this many applied entries and
    /// purges the log behind the snapshot.
    pub snapshot_every_entries: u64,
    /// A group with no writes, reads or elections for this long stops its
    /// Raft timers (no heartbeats, no election ticks); node-level pings
    /// watch its leader instead. 0 keeps every group's timers running.
    pub quiesce_after_ms: u64,
    /// Dial overrides: peer node id (as a string key) to the `host:port`
    /// this node dials instead of the `peer_addr` that membership lists
    /// (NAT, split-horizon DNS, a proxy). Every node-to-node channel (Raft
    /// and forwarding) honours it; other nodes are unaffected.
    pub dial: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// UNSAFE, for benchmarks only: acknowledge log appends without fsync.
    /// A crash may then lose acknowledged grants and releases.
    pub unsafe_no_fsync: bool,
    /// Most log entries the batched writer puts in one synced write.
    pub max_batch_entries: usize,
    /// FOR FAULT-INJECTION TESTS ONLY: while a file named
    /// `TEST_ONLY_SLOW_DISK` exists in the data directory, the WAL syncer
    /// sleeps this long before every sync, like a slow disk. 0 in
    /// production (then the file is never looked for).
    pub test_only_sync_delay_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("./data"),
            client_addr: "127.0.0.1:7001".into(),
            peer_addr: "127.0.0.1:7101".into(),
            groups: 4,
            replication_factor: 3,
            initial_cluster: Vec::new(),
            bootstrap: true,
            default_ttl_ms: 30_000,
            idle_lock_grace_ms: 60_000,
            default_list_page: 100,
            max_list_page: 1000,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 1024,
            max_connections: 10_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            session_ttl_ms: 10_000,
            ldlm_rest_session_idle_ms: 600_000,
            max_sessions: 100_000,
            watch_history: 10_000,
            max_watches: 10_000,
            runtime_threads: 1,
            raft: RaftConfig::default(),
            storage: StorageConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 200,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every_entries: 10_000,
            quiesce_after_ms: 2000,
            dial: BTreeMap::new(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { unsafe_no_fsync: false, max_batch_entries: 4096, test_only_sync_delay_ms: 0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads, parses and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_layered(Some(path), std::iter::empty())
    }

    /// The config of a node: defaults, then the file (if any), then
    /// `SHARDLOCK_*` variables from `env` (a key path in capitals, `__`
    /// between sections: `SHARDLOCK_GROUPS`, `SHARDLOCK_RAFT__HEARTBEAT_INTERVAL_MS`),
    /// each overriding the one before; validated once. Flags go on top.
    pub fn load_layered(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?,
            None => String::new(),
        };
        let named = |source| ConfigError::Parse { path: path.map_or_else(|| "<defaults>".into(), Into::into), source };
        let mut doc: toml::Table = toml::from_str(&text).map_err(named)?;
        for (name, value) in env {
            overlay(&mut doc, &name, &value)?;
        }
        let mut config: Config = toml::Value::Table(doc).try_into().map_err(named)?;
        config.read_secrets()?;
        config.validate()?;
        Ok(config)
    }

    fn read_secrets(&mut self) -> Result<(), ConfigError> {
        if let Some(file) = &self.auth.token_file {
            let text =
                std::fs::read_to_string(file).map_err(|source| ConfigError::Read { path: file.clone(), source })?;
            self.auth.token = Some(Secret::new(text.trim_end()));
        }
        Ok(())
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: PathBuf::from("<text>"), source })?;
        config.validate()?;
        Ok(config)
    }

    /// The voters of a new cluster: `initial_cluster`, or this node alone.
    pub fn voters(&self) -> Vec<Peer> {
        if self.initial_cluster.is_empty() {
            let me =
                Peer { id: self.node_id, client_addr: self.client_addr.clone(), peer_addr: self.peer_addr.clone() };
            return vec![me];
        }
        self.initial_cluster.clone()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.node_id == 0 {
            return bad("node_id must be at least 1".into());
        }
        if !(1..=4096).contains(&self.groups) {
            return bad(format!("groups is {}: use 1 to 4096", self.groups));
        }
        if !(1..=15).contains(&self.replication_factor) {
            return bad(format!("replication_factor is {}: use 1 to 15 (3 is usual)", self.replication_factor));
        }
        check_addr("client_addr", &self.client_addr)?;
        check_addr("peer_addr", &self.peer_addr)?;
        self.validate_cluster()?;
        self.limits.validate().map_err(ConfigError::Invalid)?;
        self.limits.check_ttl(self.default_ttl_ms).or_else(|e| bad(format!("default_ttl_ms: {e}")))?;
        if self.default_list_page == 0 || self.default_list_page > self.max_list_page {
            return bad("default_list_page must be 1 to max_list_page".into());
        }
        if self.max_concurrent_streams == 0 || self.max_sessions == 0 || self.max_connections == 0 {
            return bad("max_concurrent_streams, max_connections and max_sessions must be at least 1".into());
        }
        if self.ldlm_rest_session_idle_ms < 100 {
            return bad("ldlm_rest_session_idle_ms must be at least 100".into());
        }
        if let Err(why) = check_session_ttl(self.session_ttl_ms, &self.limits) {
            return bad(format!("session_ttl_ms: {why}"));
        }
        if !(100..=3_600_000).contains(&self.header_read_timeout_ms) {
            return bad(format!("header_read_timeout_ms is {}: use 100 to 3600000", self.header_read_timeout_ms));
        }
        if !(100..=3_600_000).contains(&self.body_read_timeout_ms) {
            return bad(format!("body_read_timeout_ms is {}: use 100 to 3600000", self.body_read_timeout_ms));
        }
        if self.max_message_bytes < 4096 {
            return bad("max_message_bytes must be at least 4096".into());
        }
        if self.auth.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return bad("auth token must be at least 16 characters".into());
        }
        let t = &self.tls;
        if t.cert_file.is_some() != t.key_file.is_some() || (t.cert_file.is_some() && t.ca_file.is_none()) {
            return bad("tls: set cert_file, key_file and ca_file together (or none of them)".into());
        }
        if t.client_ca_file.is_some() && t.cert_file.is_none() {
            return bad("tls.client_ca_file needs tls.cert_file, key_file and ca_file".into());
        }
        if self.storage.max_batch_entries == 0 {
            return bad("storage.max_batch_entries must be at least 1".into());
        }
        if self.storage.test_only_sync_delay_ms > 10_000 {
            return bad("storage.test_only_sync_delay_ms must be at most 10000 (and 0 outside tests)".into());
        }
        self.raft.validate()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        for p in &self.initial_cluster {
            if p.id == 0 || !ids.insert(p.id) {
                return Err(ConfigError::Invalid(format!("initial_cluster: node id {} is 0 or repeated", p.id)));
            }
            check_host_port("initial_cluster.client_addr", &p.client_addr)?;
            check_host_port("initial_cluster.peer_addr", &p.peer_addr)?;
        }
        if !self.initial_cluster.is_empty() && !ids.contains(&self.node_id) {
            return Err(ConfigError::Invalid(format!(
                "initial_cluster does not list this node (node_id {})",
                self.node_id
            )));
        }
        Ok(())
    }
}

impl RaftConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let (hb, min, max) = (self.heartbeat_interval_ms, self.election_timeout_min_ms, self.election_timeout_max_ms);
        if hb == 0 || min < 2 * hb || max <= min {
            return Err(ConfigError::Invalid(format!(
                "raft: need 0 < heartbeat_interval_ms ({hb}) <= election_timeout_min_ms ({min}) / 2 \
                 and election_timeout_min_ms < election_timeout_max_ms ({max})"
            )));
        }
        if self.snapshot_every_entries == 0 {
            return Err(ConfigError::Invalid("raft.snapshot_every_entries must be at least 1".into()));
        }
        let quiet = self.quiesce_after_ms;
        if quiet != 0 && quiet < 2 * hb {
            return Err(ConfigError::Invalid(format!(
                "raft.quiesce_after_ms ({quiet}) must be 0 (never) or at least twice heartbeat_interval_ms ({hb})"
            )));
        }
        for (id, addr) in &self.dial {
            if !id.parse::<u64>().is_ok_and(|id| id > 0) {
                return Err(ConfigError::Invalid(format!(
                    "raft.dial: key {id:?} is not a node id: use \"2\" = \"host:port\""
                )));
            }
            check_host_port(&format!("raft.dial.{id}"), addr)?;
        }
        Ok(())
    }

    /// The validated dial overrides, by node id.
    pub fn dial_overrides(&self) -> BTreeMap<u64, String> {
        self.dial.iter().filter_map(|(id, addr)| Some((id.parse().ok()?, addr.clone()))).collect()
    }
}

/// Variables that configure tools, not the node.
const NOT_SETTINGS: &[&str] = &[
    "SHARDLOCK_CONFIG",
    "SHARDLOCK_ADDR",
    "SHARDLOCK_TOKEN",
    "SHARDLOCK_LOG_FORMAT",
    "SHARDLOCK_CA_FILE",
    "SHARDLOCK_CERT_FILE",
    "SHARDLOCK_KEY_FILE",
];

/// Sets the key that `SHARDLOCK_A__B_C` names (`a.b_c`) to `value`, parsed
/// as a TOML value when it is one (numbers, booleans) and as a string else.
fn overlay(doc: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let Some(path) = name.strip_prefix("SHARDLOCK_") else { return Ok(()) };
    if NOT_SETTINGS.contains(&name) {
        return Ok(());
    }
    let known = toml::Value::try_from(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
    let is_section = |k: &str| known.get(k).is_some_and(toml::Value::is_table);
    let exists = match keys.as_slice() {
        [key] => known.get(key).is_some() && !is_section(key),
        [section, key] => is_section(section) || matches!(section.as_str(), "auth" | "tls") && !key.is_empty(),
        _ => false,
    };
    if !exists {
        return Err(ConfigError::Invalid(format!("environment variable {name} names no setting: check its spelling")));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let mut table = doc;
    for section in &keys[..keys.len() - 1] {
        let entry = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Invalid(format!("{section} is not a section")))?;
    }
    table.insert(keys[keys.len() - 1].clone(), parsed);
    Ok(())
}

/// An advertised address: `host:port`, the host a name or an IP (in
/// containers, nodes bind 0.0.0.0 and advertise their DNS names).
fn check_host_port(field: &str, addr: &str) -> Result<(), ConfigError> {
    let ok = match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    };
    if !ok {
        return Err(ConfigError::Invalid(format!("{field} {addr:?} is not a host:port address")));
    }
    Ok(())
}

/// Whether `ttl_ms` is a valid session TTL under `limits`, with the reason
/// when it is not: a session lives within the bounds of a lock's lease
/// (`limits.min_ttl_ms ..= limits.max_ttl_ms`).
pub fn check_session_ttl(ttl_ms: u64, limits: &Limits) -> Result<(), String> {
    if (limits.min_ttl_ms..=limits.max_ttl_ms).contains(&ttl_ms) {
        return Ok(());
    }
    Err(format!(
        "session ttl of {ttl_ms} ms is out of range: use {} to {} ms (limits.min_ttl_ms, limits.max_ttl_ms)",
        limits.min_ttl_ms, limits.max_ttl_ms
    ))
}

/// A listening address: `ip:port`.
fn check_addr(field: &str, addr: &str) -> Result<(), ConfigError> {
    addr.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| ConfigError::Invalid(format!("{field} {addr:?} is not an ip:port address")))
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
