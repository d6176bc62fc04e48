//! What a blocking acquire answers: a grant, `LOCK_BUSY`, `WAIT_TIMEOUT`, a
//! retryable error (clients retry with the same key), or a fault of the
//! client's own request — never `NOT_FOUND`, `INTERNAL` or `WAIT_CANCELLED`
//! for a wait nobody cancelled. Clients that choose their keys retry with
//! the same key while an earlier request may still be in flight, on the
//! same node or another; a node may be paused past its wait's deadline
//! while the leader times the wait out and the lock is deleted; leaders
//! change, nodes restart and replicas move.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shardlock::client::AcquireOptions;
use shardlock::error::{row, ApiError, ErrorCode};
use shardlock::proto::v1 as pb;
use tokio::task::JoinHandle;

use crate::fixtures::harness::{wait_for, Cluster};

const GROUPS: u32 = 4;

type Answer = Result<pb::AcquireResponse, ApiError>;

/// A blocking acquire of `name` with key `key`, pinned to node `node`.
async fn acquire_on(cluster: &Cluster, node: u64, name: &str, key: &str, wait_ms: u64) -> JoinHandle<Answer> {
    let mut raw = cluster.raw(node).await;
    let req = pb::AcquireRequest {
        name: name.as_bytes().to_vec(),
        key: key.to_owned(),
        ttl_ms: Some(30_000),
        wait_ms,
        ..Default::default()
    };
    tokio::spawn(async move { raw.acquire(req).await.map(|r| r.into_inner()).map_err(|s| ApiError::from_status(&s)) })
}

/// Waits until `key` is queued on lock `name`, as node `via` reads it.
async fn queued(cluster: &Cluster, via: u64, name: &str, key: &str) {
    let client = cluster.client(via).await;
    wait_for(&format!("{key} queued on {name}"), Duration::from_secs(20), || async {
        let lock = client.describe(name).await.ok()?.lock?;
        lock.waiters.iter().any(|w| w.key == key).then_some(())
    })
    .await;
}

fn long_hold() -> AcquireOptions {
    AcquireOptions { ttl_ms: Some(60_000), key: Some("holder".into()), ..Default::default() }
}

#[tokio::test]
async fn a_retry_with_the_same_key_shares_its_wait_and_an_abandoned_one_cancels_nothing() {
    let cluster = Cluster::start(3, GROUPS).await;
    let client = cluster.client(1).await;

    // Phase 1, one node: a client's first request (1 s) and its retry with
    // the same key (20 s) wait together; the first times out, the retry
    // keeps the place in the queue and is granted when the holder leaves.
    let name = "answers/same-node";
    let holder = client.acquire(name, long_hold()).await.unwrap();
    let first = acquire_on(&cluster, 2, name, "k1", 1_000).await;
    queued(&cluster, 1, name, "k1").await;
    let retry = acquire_on(&cluster, 2, name, "k1", 20_000).await;
    let first = first.await.unwrap().unwrap_err();
    assert_eq!(first.code, ErrorCode::WaitTimeout, "{first:?}");
    let lock = client.describe(name).await.unwrap().lock.unwrap();
    assert!(lock.waiters.iter().any(|w| w.key == "k1"), "the retry still waits: {lock:?}");
    client.release(name, &holder.key).await.unwrap();
    let granted = retry.await.unwrap().expect("the retry is granted");
    assert_eq!(granted.key, "k1");
    client.release(name, "k1").await.unwrap();

    // Phase 2, two nodes: the first request's timeout on node 2 ends the
    // wait in the log; the retry waiting on node 3 did not cancel anything,
    // so it queues again and is granted.
    let name = "answers/two-nodes";
    let holder = client.acquire(name, long_hold()).await.unwrap();
    let first = acquire_on(&cluster, 2, name, "k2", 1_000).await;
    queued(&cluster, 1, name, "k2").await;
    let retry = acquire_on(&cluster, 3, name, "k2", 20_000).await;
    assert_eq!(first.await.unwrap().unwrap_err().code, ErrorCode::WaitTimeout);
    queued(&cluster, 1, name, "k2").await;
    client.release(name, &holder.key).await.unwrap();
    let granted = retry.await.unwrap().expect("the retry on another node is granted");
    assert_eq!(granted.key, "k2");
}

#[tokio::test]
async fn a_wait_whose_lock_was_deleted_while_its_node_was_paused_times_out() {
    let mut cluster = Cluster::processes(3, GROUPS, "").await;
    let name = "answers/paused";
    let leader = cluster.leader_of(name, 1).await;
    let waiter_node = (1..=3).find(|n| *n != leader).unwrap();
    let other = (1..=3).find(|n| *n != leader && *n != waiter_node).unwrap();
    let client = cluster.client(other).await;
    let holder = client.acquire(name, long_hold()).await.unwrap();

    // The wait runs on a follower, which is frozen across its deadline;
    // meanwhile the leader times the wait out and the holder leaves, so
    // the lock is deleted before the follower's own cancel can land.
    let wait = acquire_on(&cluster, waiter_node, name, "late", 1_500).await;
    queued(&cluster, other, name, "late").await;
    cluster.pause(waiter_node, true);
    wait_for("the leader to time the wait out", Duration::from_secs(20), || async {
        let lock = client.describe(name).await.ok()?.lock?;
        lock.waiters.is_empty().then_some(())
    })
    .await;
    client.release(name, &holder.key).await.unwrap();
    assert!(client.describe(name).await.unwrap().lock.is_none(), "the emptied lock is deleted");
    cluster.pause(waiter_node, false);
    let answer = wait.await.unwrap().unwrap_err();
    assert_eq!(answer.code, ErrorCode::WaitTimeout, "{answer:?}");
    cluster.kill(waiter_node);
}

/// Whether an acquire may answer `err`: busy, timed out, retryable, or
/// the client's own fault (none here: every request is well formed).
fn allowed(err: &ApiError) -> bool {
    matches!(err.code, ErrorCode::LockBusy | ErrorCode::WaitTimeout) || row(err.code).retryable
}

/// Contending clients: blocking acquires with their own keys, retried with
/// the same key on a retryable answer (on the next node), held briefly.
fn contend(cluster: &Cluster, clients: usize, until: Instant) -> Vec<JoinHandle<BTreeMap<String, usize>>> {
    let addrs: Vec<String> = cluster.alive().iter().map(|id| cluster.addr(*id)).collect();
    (0..clients)
        .map(|c| {
            let addrs = addrs.clone();
            tokio::spawn(async move {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                let mut n = 0usize;
                while Instant::now() < until {
                    n += 1;
                    let name = format!("answers/mixed/{}", n % 4);
                    let key = format!("c{c}-{n}");
                    let mut attempt = 0;
                    loop {
                        let addr = &addrs[(c + attempt) % addrs.len()];
                        let answer = match pb::lock_client::LockClient::connect(format!("http://{addr}")).await {
                            Ok(mut raw) => {
                                let req = pb::AcquireRequest {
                                    name: name.clone().into_bytes(),
                                    key: key.clone(),
                                    ttl_ms: Some(3_000),
                                    wait_ms: 1_500,
                                    ..Default::default()
                                };
                                raw.acquire(req).await.map(|_| raw).map_err(|s| ApiError::from_status(&s))
                            }
                            Err(e) => Err(ApiError::new(ErrorCode::Unavailable, e.to_string())),
                        };
                        let label = match &answer {
                            Ok(_) => "granted".to_owned(),
                            Err(e) if allowed(e) => e.code.as_str_name().to_owned(),
                            Err(e) => format!("FORBIDDEN {}: {}", e.code.as_str_name(), e.message),
                        };
                        *seen.entry(label).or_default() += 1;
                        match answer {
                            Ok(mut raw) => {
                                let release = pb::ReleaseRequest { name: name.clone().into_bytes(), key: key.clone() };
                                let _ = raw.release(release).await;
                                break;
                            }
                            Err(e) if row(e.code).retryable && attempt < 20 && Instant::now() < until => attempt += 1,
                            Err(_) => break,
                        }
                    }
                }
                seen
            })
        })
        .collect()
}

#[tokio::test]
async fn blocking_acquires_hear_only_allowed_answers_through_faults() {
    // Four nodes at factor 3, so adding and removing one moves replicas.
    let mut cluster = Cluster::processes(4, GROUPS, "replication_factor = 3\n").await;
    let until = Instant::now() + Duration::from_secs(40);
    let clients = contend(&cluster, 8, until);

    // Faults while they contend: the leader of a contended lock's group is
    // killed and restarted, another node restarts, a fifth node joins and
    // the first leaves (its replicas move).
    let leader = cluster.leader_of("answers/mixed/1", 2).await;
    cluster.kill(leader);
    cluster.restart(leader).await;
    cluster.wait_ready().await;
    let other = cluster.alive().into_iter().find(|n| *n != leader).unwrap();
    cluster.kill(other);
    cluster.restart(other).await;
    cluster.wait_ready().await;
    let admin = cluster.client(if leader == 1 { 2 } else { leader }).await;
    let five = cluster.spawn_joiner().await;
    admin.add_node(five, &cluster.addr(five), &cluster.peer_addr(five)).await.unwrap();
    cluster.wait_placed(&[1, 2, 3, 4, 5]).await;
    admin.remove_node(1).await.unwrap();
    cluster.wait_placed(&[2, 3, 4, 5]).await;

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in clients {
        for (label, n) in c.await.unwrap() {
            *seen.entry(label).or_default() += n;
        }
    }
    eprintln!("answers: {seen:?}");
    assert!(seen.get("granted").copied().unwrap_or(0) > 0, "nothing was granted: {seen:?}");
    let forbidden: Vec<&String> = seen.keys().filter(|l| l.starts_with("FORBIDDEN")).collect();
    assert!(forbidden.is_empty(), "answers no acquire may give: {forbidden:?}");
}
