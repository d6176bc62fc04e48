//! Operating shardlock: metrics that cover the Grafana dashboard, the
//! most-contended view, and shared-secret authentication on every surface.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use shardlock::client::{AcquireOptions, Client, WatchItem, WatchOptions, WatchTarget};
use shardlock::error::{ApiError, ErrorCode};
use shardlock::proto::v1 as pb;

use crate::fixtures::harness::{http, wait_for, Cluster};

const GROUPS: u32 = 4;

/// Metric names used by the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let text = include_str!("../config/grafana-dashboard.json");
    let dash: Value = serde_json::from_str(text).expect("dashboard is JSON");
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("shardlock_") {
                let name: String = expr[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .fold(name.clone(), |n, s| n.strip_suffix(s).map_or(n.clone(), str::to_owned));
                names.insert(base);
            }
        }
    }
    names
}

/// Every metric name src/metrics.rs declares (`pub const X: &str = "shardlock_..."`).
fn declared_metrics() -> BTreeSet<String> {
    let source = include_str!("../src/metrics.rs");
    source
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"shardlock_"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn metrics_cover_the_grafana_dashboard() {
    let all: BTreeSet<String> = shardlock::metrics::ALL.iter().map(|n| n.to_string()).collect();
    assert_eq!(declared_metrics(), all, "metrics::ALL must list every name src/metrics.rs declares");
    let readme = include_str!("../README.md");
    for name in &all {
        assert!(readme.contains(name.as_str()), "the README's metrics section lacks {name}");
    }
    for name in &dashboard_metrics() {
        assert!(all.contains(name), "the dashboard uses {name}, which src/metrics.rs lacks");
    }
    // Every declared metric, not only the dashboard's, must be exported.
    let used = all;

    let cluster = Cluster::start(3, GROUPS).await;
    let (a, b) = (cluster.client(1).await, cluster.client(2).await);
    // Exercise every kind of event: grants, hand-offs, waits that time out,
    // expiries, forced releases and sessions, under a watch.
    let mut watch = Box::pin(a.watch(WatchTarget::Name("ops/hot".into()), WatchOptions::default()));
    let started = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(started, WatchItem::Progress(_)), "{started:?}");
    let first = a.acquire("ops/hot", AcquireOptions { ttl_ms: Some(600), ..Default::default() }).await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(granted, WatchItem::Events(_)), "{granted:?}");
    let timed_out = b.acquire("ops/hot", AcquireOptions { wait_ms: 100, ..Default::default() }).await.unwrap_err();
    assert_eq!(timed_out.code, ErrorCode::WaitTimeout);
    let handed = b.acquire("ops/hot", AcquireOptions { wait_ms: 20_000, ..Default::default() }).await.unwrap();
    assert!(handed.fencing_token > first.fencing_token, "the expired lease went to the waiter");
    a.release("ops/hot", &handed.key).await.unwrap();
    a.acquire("ops/forced", AcquireOptions::default()).await.unwrap();
    a.force_release("ops/forced", None).await.unwrap();
    let session = a.session(None).await.unwrap();
    session.acquire("ops/session", AcquireOptions::default()).await.unwrap();

    // Every metric the dashboard needs shows up in some node's scrape.
    let mut seen = String::new();
    let missing = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        wait_for("every declared metric in a scrape", Duration::from_secs(30), || {
            let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
            let (used, missing) = (used.clone(), missing.clone());
            async move {
                let mut all = String::new();
                for addr in &addrs {
                    all.push_str(&http(addr, "GET", "/metrics", "").await.1);
                }
                let absent: Vec<String> = used.iter().filter(|n| !all.contains(n.as_str())).cloned().collect();
                let done = absent.is_empty();
                *missing.lock().unwrap() = absent;
                done.then_some(all)
            }
        }),
    )
    .await;
    match waited {
        Ok(all) => all.clone_into(&mut seen),
        Err(_) => panic!("no scrape in 20s had {:?}", missing.lock().unwrap()),
    }
    assert!(seen.contains("call=\"Acquire\""), "per-call API metrics");
    assert!(!seen.contains("ops/hot"), "lock names must never be metric labels");

    // The most contended names come from the admin API instead.
    let (code, body) = http(&cluster.addr(3), "POST", "/v1/admin/most-contended", r#"{"limit": 3}"#).await;
    assert_eq!(code, 200, "{body}");
    let top: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(top["locks"][0]["name"], "ops/hot", "{body}");
}

const TOKEN: &str = "integration-test-shared-secret";

#[tokio::test]
async fn a_shared_secret_guards_every_surface() {
    let cluster = Cluster::start_with(1, GROUPS, &format!("[auth]\ntoken = \"{TOKEN}\"\n")).await;
    let addr = cluster.addr(1);

    // gRPC: refused without the token, served with it.
    let mut raw = cluster.raw(1).await;
    let req = pb::AcquireRequest { name: b"auth/a".to_vec(), ..Default::default() };
    let status = raw.acquire(req).await.unwrap_err();
    assert_eq!(
        (status.code(), ApiError::from_status(&status).code),
        (tonic::Code::Unauthenticated, ErrorCode::Unauthenticated)
    );
    let client = Client::connect_with(&[addr.as_str()], Some(TOKEN)).await.unwrap();
    client.acquire("auth/a", AcquireOptions::default()).await.unwrap();
    assert!(Client::connect_with(&[addr.as_str()], Some("not-the-token")).await.is_err());

    // REST: 401 without or with a wrong token; probes and metrics stay open.
    let (code, body) = http(&addr, "POST", "/v1/lock/describe", r#"{"name": "auth/a"}"#).await;
    assert_eq!((code, body.contains("UNAUTHENTICATED")), (401, true), "{body}");
    assert_eq!(http(&addr, "GET", "/healthz", "").await.0, 200);
    assert_eq!(http(&addr, "GET", "/metrics", "").await.0, 200);

    // ldlm: the password travels in the `authorization` metadata.
    let script = format!(
        "import sys, grpc\nfrom ldlm import Client\n\
         assert Client('{addr}', password='{TOKEN}', retries=0, auto_renew_locks=False).try_lock('auth/ldlm').locked\n\
         try:\n    Client('{addr}', password='wrong', retries=0, auto_renew_locks=False).try_lock('auth/ldlm2')\n    sys.exit('accepted a wrong password')\n\
         except grpc.RpcError as e:\n    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e\nprint('OK')\n"
    );
    let run = tokio::process::Command::new("python3").args(["-c", &script]).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"), "{}", String::from_utf8_lossy(&out.stderr));

    // CLI: --token (or SHARDLOCK_TOKEN).
    let cli = |token: Option<&str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardlock"));
        cmd.args(["describe", "auth/a", "--addr", &addr]).env_remove("SHARDLOCK_TOKEN").kill_on_drop(true);
        if let Some(t) = token {
            cmd.env("SHARDLOCK_TOKEN", t);
        }
        cmd.output()
    };
    assert!(cli(Some(TOKEN)).await.unwrap().status.success());
    let refused = cli(None).await.unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("credentials"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_node_without_failing_requests() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let mut cluster = Cluster::processes(3, 8, "").await;
    let preferred = cluster.wait_balanced().await;
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    let seeds: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let client = Client::connect_any(&seeds).await.unwrap();

    // Phase 1: eight clients cycle acquire+release on their own locks.
    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for i in 0..8 {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let name = format!("drain/{i}");
            while !stop.load(Ordering::Relaxed) {
                let cycle = async {
                    let grant = client.acquire(&name, AcquireOptions { wait_ms: 10_000, ..Default::default() }).await?;
                    client.release(&name, &grant.key).await
                };
                match cycle.await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(err) => {
                        eprintln!("worker {i}: {err:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    wait_for("the workers to get going", Duration::from_secs(20), || async {
        (ok.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await;

    // Phase 2: SIGTERM node 1, which leads a third of the groups.
    let before = ok.load(Ordering::Relaxed);
    let took = cluster.terminate(1).await;
    // Node 2 may learn of the last transfers a moment after node 1 exits.
    wait_for("node 2 to see every group led by node 2 or 3", Duration::from_secs(5), || async {
        cluster.leaders(2).await.filter(|ls| ls.iter().all(|&l| l == 2 || l == 3))
    })
    .await;
    wait_for("work to go on without node 1", Duration::from_secs(20), || async {
        (ok.load(Ordering::Relaxed) >= before + 50).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let log = cluster.log_tail(1);
    let drained = log.lines().find(|l| l.contains("drained in")).unwrap_or("(no drain line)").to_owned();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("drain: node 1 exited {took:?} after SIGTERM; {drained}; requests ok {ok}, failed {failed}");
    assert_eq!(failed, 0, "requests failed during the drain");
    // Node 1 itself saw every one of its groups led elsewhere before it stopped.
    let moved: Vec<&str> = drained.split("moved ").nth(1).unwrap_or("").split_whitespace().collect();
    assert!(moved.len() >= 3 && moved[0] == moved[2], "node 1 did not hand off every group: {drained}\n{log}");

    // Phase 3: it rejoins and the balancer gives its groups back.
    cluster.restart(1).await;
    assert_eq!(cluster.wait_balanced().await, preferred);
}
