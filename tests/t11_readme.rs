//! Every `shardlock`, `curl` and `redis-cli` command in README.md's code
//! blocks, run as written (by `sh`, in README order) against a real node.
//!
//! What is mapped, and only this: the README's `localhost:7001` (and
//! `redis-cli -p 7001`) is the test node; `host4:7001`/`host4:7101` and `--id 4` are a real joining node;
//! `<key>` and `4c80b9bf…` are the key the README's earlier command got for
//! the same lock name (or election); `[--key <key>]` is left out;
//! `./backup.sh` and `./run-primary.sh` are `true`. A command passes when it exits 0 and prints no error body,
//! except the few [`EXPECTED_FAILURES`], which must fail for the reason
//! given (never with a usage error, never with a 404).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::fixtures::harness::Cluster;

/// Commands that fail by design, and a word their failure must contain.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    // The line before took orders/42 for 30 s.
    ("shardlock acquire orders/42 --wait 5s", "wait"),
    ("\"wait_ms\": 5000", "WAIT_TIMEOUT"),
];

/// The commands of README.md's code blocks, in order, comments cut.
fn readme_commands() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut inside = false;
    let mut out = Vec::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        let line = line.trim();
        let runs =
            ["shardlock ", "curl ", "redis-cli ", "./target/release/shardlock "].iter().any(|p| line.starts_with(p));
        if inside && runs && !line.starts_with("shardlock serve") {
            let command = line.split("   #").next().unwrap_or(line).trim();
            out.push(command.to_owned());
        }
    }
    out
}

/// The lock name a command is about, if any.
fn lock_name(command: &str) -> Option<String> {
    for field in ["\"name\": \"", "\"election\": \""] {
        if let Some(rest) = command.split(field).nth(1) {
            return rest.split('"').next().map(str::to_owned);
        }
    }
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        [_, "acquire" | "unlock" | "set-value" | "downgrade", name, ..] => Some((*name).to_owned()),
        [_, "admin", "force-release", name, ..] => Some((*name).to_owned()),
        _ => None,
    }
}

/// The key a command's output shows: `key=...` (CLI) or `"key":"..."`.
fn key_in(output: &str) -> Option<String> {
    let after = output.split("key=").nth(1).or_else(|| output.split("\"key\":\"").nth(1))?;
    let key: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
    (!key.is_empty()).then_some(key)
}

/// Whether redis-cli printed an error reply (its first word is a code).
fn resp_error(text: &str) -> bool {
    let code = |w: &str| {
        w == "ERR" || (w.len() > 2 && w.contains('_') && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    };
    text.lines().any(|l| l.trim_start_matches("(error) ").split(' ').next().is_some_and(code))
}

struct Run {
    ok: bool,
    text: String,
}

async fn run(command: &str, dir: &Path, addr: &str) -> Run {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_shardlock")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        .env("SHARDLOCK_ADDR", addr)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child).await.expect("a README command hung").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let error_body = text.contains("\"code\":\"") || text.contains("\"error\"") || resp_error(&text);
    Run { ok: out.status.success() && !error_body, text }
}

#[tokio::test]
async fn every_readme_command_runs_as_written() {
    let mut cluster = Cluster::start(1, 4).await;
    let joiner = cluster.spawn_joiner().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = cluster.addr(1);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let commands = readme_commands();
    assert!(commands.len() >= 30, "found only {} README commands", commands.len());
    let mut keys: HashMap<String, String> = HashMap::new();
    for written in &commands {
        let name = lock_name(written);
        let key = name.as_ref().and_then(|n| keys.get(n)).cloned().unwrap_or_default();
        let command = written
            .replace("./target/release/shardlock", "shardlock")
            .replace("localhost:7001", &addr)
            .replace("redis-cli -p 7001", &format!("redis-cli -h {} -p {}", host, port))
            .replace("host4:7001", &cluster.addr(joiner))
            .replace("host4:7101", &cluster.peer_addr(joiner))
            .replace("--id 4", &format!("--id {joiner}"))
            .replace(" [--key <key>]", "")
            .replace("<key>", &key)
            .replace("4c80b9bf…", &key)
            .replace("./backup.sh", "true")
            .replace("./run-primary.sh", "true");
        let result = run(&command, dir.path(), &addr).await;
        assert!(!result.text.contains("unrecognized subcommand"), "refused: {written}\n{}", result.text);
        assert!(!result.text.contains("unexpected argument"), "refused: {written}\n{}", result.text);
        assert!(!result.text.contains("NOT_FOUND\",\"message\":\"no route"), "no such route: {written}");
        match EXPECTED_FAILURES.iter().find(|(what, _)| written.contains(what)) {
            Some((_, why)) => {
                assert!(!result.ok && result.text.contains(why), "{written} should fail with {why}:\n{}", result.text)
            }
            None => assert!(result.ok, "README command failed: {written}\nran: {command}\n{}", result.text),
        }
        if let (Some(name), Some(key)) = (name, key_in(&result.text)) {
            keys.insert(name, key);
        }
    }
}
