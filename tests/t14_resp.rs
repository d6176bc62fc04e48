//! RESP, the Redis protocol, on the client port, checked with real Redis
//! clients: `redis-py` (PyPI) and `redis-cli` (Debian's `redis-tools`),
//! both installed by `make test`.

use std::time::Duration;

use crate::fixtures::harness::Cluster;

const TOKEN: &str = "resp-token-0123456789abcdef";

/// Runs `redis-cli` against `addr` with `args`; returns its output.
async fn redis_cli(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let run = tokio::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port, "--no-auth-warning", "-a", TOKEN])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("redis-cli finished in time")
        .expect("redis-cli runs (make test installs redis-tools)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn redis_py_locks_waits_pipelines_and_holds_sessions() {
    let cluster = Cluster::start_with(3, 8, &format!("[auth]\ntoken = \"{TOKEN}\"\n")).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resp_client.py");
    let run =
        tokio::process::Command::new("python3").arg(script).arg(cluster.addr(2)).arg(TOKEN).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the redis-py script finished in time")
        .expect("python3 runs (make test installs redis-py)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("OK"), "redis-py failed:\n{stdout}\n{stderr}");
}

#[tokio::test]
async fn redis_cli_speaks_to_any_node() {
    let cluster = Cluster::start_with(3, 8, &format!("[auth]\ntoken = \"{TOKEN}\"\n")).await;
    let (one, three) = (cluster.addr(1), cluster.addr(3));
    assert_eq!(redis_cli(&one, &["PING"]).await.trim(), "PONG");

    // A grant through node 1 (a flat array of field, value in RESP2) ...
    let grant = redis_cli(&one, &["LOCK", "cli/orders/42", "TTL", "30000", "KEY", "cli-key-1"]).await;
    let lines: Vec<&str> = grant.lines().collect();
    assert_eq!(&lines[..2], &["key", "cli-key-1"], "{grant}");
    assert!(lines.contains(&"fencing_token"), "{grant}");
    // ... refused through node 3 with the shardlock code first ...
    let busy = redis_cli(&three, &["LOCK", "cli/orders/42"]).await;
    assert!(busy.contains("LOCK_BUSY"), "{busy}");
    // ... described as a map in RESP3, and released.
    let described = redis_cli(&three, &["-3", "DESCRIBE", "cli/orders/42"]).await;
    assert!(described.contains("holders") && described.contains("cli-key-1"), "{described}");
    assert_eq!(redis_cli(&three, &["UNLOCK", "cli/orders/42", "cli-key-1"]).await.trim(), "OK");
    assert!(redis_cli(&one, &["GET", "x"]).await.contains("unknown command"));
}
