//! The `shardlock` binary: the server (`serve`) and the client subcommands.
//!
//! Client subcommands print human-readable tables, or JSON with `--json`.
//! Durations take a unit (`500ms`, `30s`, `2m`, `1h`); a bare number is
//! milliseconds. Errors go to stderr as `error: <message>` with exit code 1.

mod commands;
mod output;
mod supervise;
mod watching;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shardlock", version, about = "A sharded multi-Raft lock service with counting semaphores")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct Target {
    /// Client address of any node of the cluster.
    #[arg(long, global = true, env = "SHARDLOCK_ADDR", default_value = "127.0.0.1:7001")]
    pub addr: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Token for clusters that require one (auth.token).
    #[arg(long, global = true, env = "SHARDLOCK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify a TLS cluster with.
    #[arg(long, global = true, env = "SHARDLOCK_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for clusters that require mutual TLS.
    #[arg(long, global = true, env = "SHARDLOCK_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    #[arg(long, global = true, env = "SHARDLOCK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// Lock options shared by `lock` and `acquire`.
#[derive(Args, Clone)]
pub struct LockArgs {
    /// Semaphore size (1: a mutex).
    #[arg(long)]
    pub size: Option<u32>,
    /// Permits to take at once.
    #[arg(long)]
    pub permits: Option<u32>,
    /// Lease TTL (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<u64>,
    /// How long to wait in the queue (e.g. 10s); 0 is a try-lock.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub wait: u64,
    /// Holder key to use (default: a random one).
    #[arg(long)]
    pub key: Option<String>,
    /// exclusive, or shared (holders share a lock of size 1; for readers).
    #[arg(long, default_value = "exclusive")]
    pub mode: String,
    /// A value the holder carries (shown by describe, list and watch).
    #[arg(long)]
    pub value: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With no flags: a single-node cluster, data in ./data, on 127.0.0.1.
    Serve(commands::ServeArgs),
    /// Run a command while holding a lock; the lease is kept alive, and the
    /// command gets SIGTERM if the lock is lost. The command sees
    /// SHARDLOCK_NAME, SHARDLOCK_KEY, SHARDLOCK_FENCING_TOKEN and SHARDLOCK_PERMITS.
    Lock {
        name: String,
        #[command(flatten)]
        lock: LockArgs,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Acquire a lock and print the grant (it expires after its TTL).
    Acquire {
        name: String,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Release a lock held with KEY.
    #[command(alias = "release")]
    Unlock {
        name: String,
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Change (or, without VALUE, clear) the value the holder KEY carries.
    SetValue {
        name: String,
        key: String,
        value: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Turn the exclusive holder KEY of a lock of size 1 shared (same token).
    Downgrade {
        name: String,
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print a lock's changes as they happen (or, with --prefix, those of
    /// every lock whose name starts with NAME): granted, released, expired,
    /// force_released, queued, wait_ended, value_changed, downgraded.
    /// Exits 3 if the node no longer has the history asked for.
    Watch {
        name: String,
        /// Watch every lock whose name starts with NAME.
        #[arg(long)]
        prefix: bool,
        /// Start at this log index of the lock's group (resume after the
        /// last index printed); default: now.
        #[arg(long)]
        from: Option<u64>,
        /// Exit after printing this many events.
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Campaign in an election; once leading, run a command while leadership
    /// lasts (it gets SIGTERM if leadership is lost), then resign. The
    /// command sees SHARDLOCK_ELECTION, SHARDLOCK_KEY, SHARDLOCK_TERM and
    /// SHARDLOCK_VALUE.
    Elect {
        election: String,
        /// The leader's value (where it can be reached, say).
        #[arg(long, default_value = "")]
        value: String,
        /// Lease TTL of the leadership (e.g. 10s).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<u64>,
        /// How long to wait for leadership (default: as long as the cluster allows).
        #[arg(long, value_parser = parse_duration, default_value = "0")]
        wait: u64,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Print an election's leader now, then every change (or "no leader").
    Observe {
        election: String,
        /// Exit after printing this many leaders.
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Print an election's leader.
    Leader {
        election: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show a lock's holders and waiters.
    Describe {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List locks by name prefix.
    List {
        #[arg(default_value = "")]
        prefix: String,
        /// Most locks to print.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Nodes, groups, leaders and health as one node sees them.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the Raft group a lock name belongs to.
    GroupOf {
        name: String,
        /// The cluster's group count (`groups` in its config).
        #[arg(long, default_value_t = shardlock::config::Config::default().groups)]
        groups: u32,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// End one holder (--key) or every holder of a lock, whatever its lease.
    ForceRelease {
        name: String,
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Make a started node a voter of every group (learner, catch up, voter).
    AddNode {
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The client address other nodes forward to.
        #[arg(long)]
        client_addr: String,
        /// The address peers reach it on.
        #[arg(long)]
        peer_addr: String,
        #[command(flatten)]
        target: Target,
    },
    /// Take a node out of every group's voters (then stop it).
    RemoveNode {
        /// The node's id.
        #[arg(long)]
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// The lock names that queued most often, most first.
    MostContended {
        /// Most names to print.
        #[arg(long, default_value_t = 10)]
        limit: u32,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a commented config file with every key at its default.
    Default,
    /// Check a config file and print it with defaults filled in.
    Check { file: PathBuf },
}

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 2m or 1h"))?;
    let scale = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m or h")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{text:?} is too long"))
}

/// mimalloc: glibc's malloc took about 12% of a node's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (threads, serving) = match cli.command {
        // A node's config says how many threads its runtime gets.
        Command::Serve(ref args) => match commands::serve_config(args) {
            Ok(config) => (config.runtime_threads, Some((config, args.json_logs()))),
            Err(err) => {
                eprintln!("error: {err:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => (1, None),
    };
    let runtime = match shardlock::node::runtime(threads) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let ran = match serving {
        Some((config, json)) => runtime.block_on(commands::serve(config, json)).map(|()| ExitCode::SUCCESS),
        None => runtime.block_on(run(cli)),
    };
    match ran {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(_) => unreachable!("serve runs from main with its config"),
        Command::Lock { name, lock, cmd, target } => return commands::lock(&target, &name, &lock, &cmd).await,
        Command::Acquire { name, lock, target } => commands::acquire(&target, &name, &lock).await?,
        Command::Unlock { name, key, target } => commands::unlock(&target, &name, &key).await?,
        Command::SetValue { name, key, value, target } => {
            commands::set_value(&target, &name, &key, value.as_deref()).await?
        }
        Command::Downgrade { name, key, target } => commands::downgrade(&target, &name, &key).await?,
        Command::Watch { name, prefix, from, count, target } => {
            return watching::watch(&target, &name, prefix, from, count).await
        }
        Command::Elect { election, value, ttl, wait, cmd, target } => {
            let opts = shardlock::client::CampaignOptions { ttl_ms: ttl, wait_ms: wait, key: None };
            return watching::elect(&target, &election, &value, opts, &cmd).await;
        }
        Command::Observe { election, count, target } => return watching::observe(&target, &election, count).await,
        Command::Leader { election, target } => watching::leader(&target, &election).await?,
        Command::Describe { name, target } => commands::describe(&target, &name).await?,
        Command::List { prefix, limit, target } => commands::list(&target, &prefix, limit).await?,
        Command::Status { target } => commands::status(&target).await?,
        Command::Admin { action } => admin(action).await?,
        Command::Config { action: ConfigAction::Default } => print!("{}", commands::TEMPLATE),
        Command::Config { action: ConfigAction::Check { file } } => commands::config_check(&file)?,
        Command::GroupOf { name, groups } => println!("{}", shardlock::routing::group_of(name.as_bytes(), groups)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn admin(action: AdminAction) -> anyhow::Result<()> {
    match action {
        AdminAction::ForceRelease { name, key, target } => {
            commands::force_release(&target, &name, key.as_deref()).await
        }
        AdminAction::AddNode { id, client_addr, peer_addr, target } => {
            commands::add_node(&target, id, &client_addr, &peer_addr).await
        }
        AdminAction::RemoveNode { id, target } => commands::remove_node(&target, id).await,
        AdminAction::MostContended { limit, target } => commands::most_contended(&target, limit).await,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250"), Ok(250));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("2m"), Ok(120_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
