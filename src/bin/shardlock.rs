//! The `shardlock` binary: configuration tools today; the server and the
//! client subcommands join it as they land.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shardlock::config::Config;
use shardlock::routing::group_of;

const TEMPLATE: &str = include_str!("../../config/shardlock.example.toml");

#[derive(Parser)]
#[command(
    name = "shardlock",
    version,
    about = "A sharded multi-Raft lock service with counting semaphores"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the Raft group a lock name belongs to.
    GroupOf {
        name: String,
        /// The cluster's group count.
        #[arg(long, default_value_t = 64)]
        groups: u32,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a commented config file with every key at its default.
    Default,
    /// Check a config file and print it with defaults filled in.
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config {
            action: ConfigAction::Default,
        } => print!("{TEMPLATE}"),
        Command::Config {
            action: ConfigAction::Check { file },
        } => {
            let config = Config::load(&file)?;
            print!("{}", toml::to_string(&config)?);
        }
        Command::GroupOf { name, groups } => println!("{}", group_of(name.as_bytes(), groups)),
    }
    Ok(())
}
