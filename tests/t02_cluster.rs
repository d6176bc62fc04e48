//! A replicated cluster of real nodes on loopback: locking across nodes,
//! semaphores under concurrency, leader failure, full restart, expiry and
//! forwarding. Each test is a linear story; waits are on observable state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardlock::client::AcquireOptions;
use shardlock::error::{ApiError, ErrorCode};
use shardlock::proto::v1 as pb;

use crate::fixtures::harness::{wait_for, Cluster};

const GROUPS: u32 = 8;

fn wait(ms: u64) -> AcquireOptions {
    AcquireOptions { wait_ms: ms, ..Default::default() }
}

#[tokio::test]
async fn lock_wait_and_handoff_across_nodes() {
    let cluster = Cluster::start(3, GROUPS).await;
    let (a, b, c) = (cluster.client(1).await, cluster.client(2).await, cluster.client(3).await);

    // Phase 1: node 1's client holds; a try-lock through node 3 is refused.
    let first = a.acquire("handoff", AcquireOptions::default()).await.unwrap();
    let busy = c.acquire("handoff", AcquireOptions::default()).await.unwrap_err();
    assert_eq!(busy.code, ErrorCode::LockBusy);

    // Phase 2: node 2's client blocks; node 3 sees it queued.
    let waiter = tokio::spawn(async move { b.acquire("handoff", wait(20_000)).await });
    wait_for("the waiter to be queued", Duration::from_secs(10), || {
        let c = c.clone();
        async move { c.describe("handoff").await.ok()?.lock.filter(|l| l.waiters.len() == 1) }
    })
    .await;

    // Phase 3: release hands the lock to the waiter, with a larger token.
    a.release("handoff", &first.key).await.unwrap();
    let second = waiter.await.unwrap().unwrap();
    assert!(second.fencing_token > first.fencing_token);
    let lock = c.describe("handoff").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders.len(), 1);
    assert_eq!(lock.holders[0].key, second.key);
    assert!(lock.waiters.is_empty());

    // Phase 4: every replica applies the hand-off (typed waits on each
    // in-process node's Raft state) and holds the lock in its table.
    let at = second.header.expect("a response header");
    for id in 1..=3 {
        cluster.wait(id).applied(at.group, at.index).await;
        assert!(cluster.wait(id).locks(at.group) >= 1, "node {id} applied the grant");
    }
}

#[tokio::test]
async fn semaphore_size_is_respected_with_many_clients() {
    let cluster = Cluster::start(3, GROUPS).await;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let client = cluster.client(1 + i % 3).await;
        let (inside, most) = (inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            let opts = AcquireOptions { size: Some(3), wait_ms: 30_000, ..Default::default() };
            let grant = client.acquire("slots", opts).await.expect("acquire a slot");
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Hold the slot across a real round trip so holders overlap.
            let held = client.describe("slots").await.unwrap().lock.unwrap().permits_held;
            assert!(held <= 3, "the server reports {held} permits held");
            inside.fetch_sub(1, Ordering::SeqCst);
            client.release("slots", &grant.key).await.expect("release");
            grant.fencing_token
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 12, "every grant has its own token");
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} clients held a slot at once");
}

#[tokio::test]
async fn a_grant_survives_killing_the_group_leader() {
    let mut cluster = Cluster::processes(3, GROUPS, "").await;
    let leader = cluster.leader_of("survivor", 1).await;
    let via = if leader == 1 { 2 } else { 1 };
    let client = cluster.client(via).await;
    let opts = AcquireOptions { ttl_ms: Some(60_000), ..Default::default() };
    let grant = client.acquire("survivor", opts).await.unwrap();

    // Phase 2: kill -9 the leader; another node takes over the group.
    cluster.kill(leader);
    let new_leader = cluster.leader_of("survivor", via).await;
    assert_ne!(new_leader, leader);

    // Phase 3: the holder is still there, with the same token.
    let lock = client.describe("survivor").await.unwrap().lock.expect("lock survives");
    assert_eq!(lock.holders.len(), 1);
    assert_eq!(lock.holders[0].key, grant.key);
    assert_eq!(lock.holders[0].fencing_token, grant.fencing_token);

    // Phase 4: tokens keep increasing under the new leader.
    client.release("survivor", &grant.key).await.unwrap();
    let next = client.acquire("survivor", AcquireOptions::default()).await.unwrap();
    assert!(next.fencing_token > grant.fencing_token);

    // Phase 5: while it is down, the group writes far past a snapshot
    // (every 50 entries here) and purges its log.
    let mut last = next;
    for _ in 0..60 {
        client.release("survivor", &last.key).await.unwrap();
        last = client.acquire("survivor", AcquireOptions::default()).await.unwrap();
    }

    // Phase 6: the old leader comes back and catches up from a snapshot.
    cluster.restart(leader).await;
    let group = shardlock::routing::group_of(b"survivor", GROUPS) as usize;
    let target = client.status().await.unwrap().group_status[group].applied_index;
    let back = cluster.client(leader).await;
    wait_for("the restarted node to apply the group's log", Duration::from_secs(20), || {
        let back = back.clone();
        async move { back.status().await.ok().filter(|s| s.group_status[group].applied_index >= target) }
    })
    .await;
    let lock = back.describe("survivor").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].key, last.key);
    assert_eq!(lock.holders[0].fencing_token, last.fencing_token);
}

#[tokio::test]
async fn a_full_restart_keeps_holders_and_tokens() {
    let mut cluster = Cluster::processes(3, GROUPS, "").await;
    let client = cluster.client(1).await;
    let opts = AcquireOptions { ttl_ms: Some(120_000), ..Default::default() };
    let mut grants = Vec::new();
    for i in 0..20 {
        grants.push((format!("durable/{i}"), client.acquire(&format!("durable/{i}"), opts.clone()).await.unwrap()));
    }
    drop(client);

    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    cluster.wait_ready().await;

    let client = cluster.client(2).await;
    for (name, grant) in &grants {
        let lock = client.describe(name).await.unwrap().lock.expect("lock after restart");
        assert_eq!(lock.holders[0].key, grant.key, "{name}");
        assert_eq!(lock.holders[0].fencing_token, grant.fencing_token, "{name}");
    }
    let (name, old) = &grants[0];
    client.release(name, &old.key).await.unwrap();
    let new = client.acquire(name, AcquireOptions::default()).await.unwrap();
    assert!(new.fencing_token > old.fencing_token);
}

/// Every group, the meta group too, snapshots after each entry, and the
/// whole cluster restarts twice: the elections after the first restart
/// give every group (the meta group too) entries past its snapshot, so the
/// second restart installs each one. A node once panicked installing the
/// meta group's, which holds no locks.
#[tokio::test]
async fn nodes_restart_from_the_snapshots_of_every_group() {
    let mut cluster = Cluster::processes(3, GROUPS, "[raft]\nsnapshot_every_entries = 1\n").await;
    let client = cluster.client(1).await;
    let opts = AcquireOptions { ttl_ms: Some(120_000), ..Default::default() };
    let held = client.acquire("snapshotted", opts).await.unwrap();
    drop(client);
    for _ in 0..2 {
        for id in 1..=3 {
            cluster.kill(id);
        }
        for id in 1..=3 {
            cluster.restart(id).await;
        }
        cluster.wait_ready().await;
    }
    let lock = cluster.client(1).await.describe("snapshotted").await.unwrap().lock.expect("the lock after restart");
    assert_eq!(lock.holders[0].fencing_token, held.fencing_token);
}

#[tokio::test]
async fn an_expired_lease_goes_to_the_next_waiter() {
    let cluster = Cluster::start(3, GROUPS).await;
    let (a, b) = (cluster.client(1).await, cluster.client(2).await);
    let short = AcquireOptions { ttl_ms: Some(1000), ..Default::default() };
    let first = a.acquire("expiring", short).await.unwrap();
    // Never refreshed: the leader expires it and the waiter gets the lock.
    let second = b.acquire("expiring", wait(30_000)).await.unwrap();
    assert!(second.fencing_token > first.fencing_token);
    let err = a.refresh("expiring", &first.key, None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotHolder);
    let valid = b.validate_fence("expiring", second.fencing_token).await.unwrap();
    assert!(valid.valid);
    assert!(!b.validate_fence("expiring", first.fencing_token).await.unwrap().valid);
}

#[tokio::test]
async fn requests_to_a_follower_are_forwarded() {
    let cluster = Cluster::start(3, GROUPS).await;
    let group = shardlock::routing::group_of(b"forwarded", GROUPS);
    let leader = cluster.wait_balanced().await[group as usize];
    let follower = if leader == 3 { 2 } else { 3 };
    // A plain gRPC client pinned to the follower (the smart client would
    // go to the leader directly).
    let mut raw = cluster.raw(follower).await;
    let name = b"forwarded".to_vec();
    let acquire = pb::AcquireRequest { name: name.clone(), ..Default::default() };
    let grant = raw.acquire(acquire).await.unwrap().into_inner();
    let header = grant.header.unwrap();
    assert_eq!((header.group, header.node_id), (group, follower));
    let describe = pb::DescribeRequest { name: name.clone() };
    let lock = raw.describe(describe).await.unwrap().into_inner().lock.unwrap();
    assert_eq!(lock.holders[0].key, grant.key);
    let refresh = pb::RefreshRequest { name: name.clone(), key: grant.key.clone(), ttl_ms: Some(5000) };
    assert_eq!(raw.refresh(refresh).await.unwrap().into_inner().ttl_ms, 5000);
    let release = pb::ReleaseRequest { name: name.clone(), key: grant.key.clone() };
    raw.release(release.clone()).await.unwrap();
    // The release emptied the lock and deleted it: a second one finds no lock.
    let again = raw.release(release).await.unwrap_err();
    assert_eq!(ApiError::from_status(&again).code, ErrorCode::NotFound);
    assert!(raw.describe(pb::DescribeRequest { name }).await.unwrap().into_inner().lock.is_none());
}

#[tokio::test]
async fn a_waiter_whose_client_goes_away_leaves_the_queue() {
    let cluster = Cluster::start(3, GROUPS).await;
    let (a, b, c) = (cluster.client(1).await, cluster.client(2).await, cluster.client(3).await);
    a.acquire("abandoned", AcquireOptions::default()).await.unwrap();
    let waiter = tokio::spawn(async move { b.acquire("abandoned", wait(60_000)).await });
    wait_for("the waiter to be queued", Duration::from_secs(10), || {
        let c = c.clone();
        async move { c.describe("abandoned").await.ok()?.lock.filter(|l| l.waiters.len() == 1) }
    })
    .await;
    // The client goes away: its node cancels the wait in the log.
    waiter.abort();
    wait_for("the abandoned waiter to leave the queue", Duration::from_secs(10), || {
        let c = c.clone();
        async move { c.describe("abandoned").await.ok()?.lock.filter(|l| l.waiters.is_empty()) }
    })
    .await;
}

#[tokio::test]
async fn leaders_spread_evenly_and_come_back_after_a_restart() {
    let mut cluster = Cluster::processes(3, GROUPS, "").await;
    let preferred = cluster.wait_balanced().await;

    // Node 2 dies: its groups move away; when it returns they come back.
    cluster.kill(2);
    wait_for("node 2's groups to elect other leaders", Duration::from_secs(20), || async {
        cluster.leaders(1).await.filter(|l| l.iter().all(|&id| id == 1 || id == 3))
    })
    .await;
    cluster.restart(2).await;
    assert_eq!(cluster.wait_balanced().await, preferred);
}

/// `shardlock_groups_quiesced` as node `id` exports it.
async fn quiesced(cluster: &Cluster, id: u64) -> Option<u32> {
    let (status, body) = crate::fixtures::harness::http(&cluster.addr(id), "GET", "/metrics", "").await;
    let line = body.lines().find(|l| l.starts_with("shardlock_groups_quiesced "))?;
    (status == 200).then(|| line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|v| v as u32))?
}

async fn all_quiet(cluster: &Cluster) -> Option<()> {
    for id in cluster.alive() {
        if quiesced(cluster, id).await? != GROUPS {
            return None;
        }
    }
    Some(())
}

#[tokio::test]
async fn idle_groups_quiesce_and_still_fail_over() {
    let mut cluster = Cluster::processes(3, GROUPS, "[raft]\nquiesce_after_ms = 300\n").await;
    let leader = cluster.leader_of("quiet", 1).await;
    let via = if leader == 1 { 2 } else { 1 };
    let client = cluster.client(via).await;
    let grant = client.acquire("quiet", AcquireOptions { ttl_ms: Some(60_000), ..Default::default() }).await.unwrap();

    // Phase 1: with no traffic every group of every node stops its timers.
    wait_for("every group to quiesce", Duration::from_secs(20), || all_quiet(&cluster)).await;

    // Phase 2: a quiet group still answers reads (ReadIndex needs no timers)
    // and writes (the first renews the quiet leader's lease) at once.
    let seen = client.describe("quiet").await.unwrap().lock.expect("held lock is there");
    assert_eq!(seen.holders[0].fencing_token, grant.fencing_token);
    let other = client.acquire("quiet/other", AcquireOptions::default()).await.unwrap();
    client.release("quiet/other", &other.key).await.unwrap();
    wait_for("the woken group to quiesce again", Duration::from_secs(20), || all_quiet(&cluster)).await;

    // Phase 3: kill -9 the leader of a quiet group: node pings notice, a
    // follower takes over, and the holder keeps its token.
    cluster.kill(leader);
    let new_leader = cluster.leader_of("quiet", via).await;
    assert_ne!(new_leader, leader);
    let lock = client.describe("quiet").await.unwrap().lock.expect("lock survives");
    assert_eq!((lock.holders[0].key.clone(), lock.holders[0].fencing_token), (grant.key.clone(), grant.fencing_token));
    client.release("quiet", &grant.key).await.unwrap();
    let next = client.acquire("quiet", AcquireOptions::default()).await.unwrap();
    assert!(next.fencing_token > grant.fencing_token);

    // Phase 4: the survivors' groups, the taken-over ones too, go quiet again.
    wait_for("the survivors to quiesce", Duration::from_secs(20), || all_quiet(&cluster)).await;
}
