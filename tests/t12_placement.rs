//! Scale-out: on 6 nodes with replication factor 3 each group lives on 3
//! nodes; nodes that hold no replica of a lock's group still serve it (one
//! hop, blocking waits and sessions included, and a waiter whose node
//! dies leaves the queue at once); a kill -9 leaves every lock available;
//! a 7th node takes replicas and a removed node gives its own away.

use std::collections::HashMap;
use std::time::Duration;

use shardlock::client::{AcquireOptions, Client};
use shardlock::proto::v1 as pb;
use shardlock::routing::{group_of, Placement};

use crate::fixtures::harness::{wait_for, Cluster};

const GROUPS: u32 = 12;
/// Groups (the meta group too) go quiet after 300 ms, so membership changes
/// meet quiet leaders, whose lapsed leases must be renewed first.
const EXTRA: &str = "replication_factor = 3\n[raft]\nquiesce_after_ms = 300\n";

/// One lock name per group.
fn names() -> Vec<String> {
    let mut by_group: HashMap<u32, String> = HashMap::new();
    for i in 0.. {
        let name = format!("place/{i}");
        by_group.entry(group_of(name.as_bytes(), GROUPS)).or_insert(name);
        if by_group.len() == GROUPS as usize {
            break;
        }
    }
    (0..GROUPS).map(|g| by_group[&g].clone()).collect()
}

fn spread(counts: impl Iterator<Item = usize>) -> usize {
    let counts: Vec<usize> = counts.collect();
    counts.iter().max().unwrap() - counts.iter().min().unwrap()
}

/// Every group takes an acquire and a release through `client`.
async fn every_group_serves(client: &Client) {
    for name in names() {
        let grant = client.acquire(&name, AcquireOptions::default()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        client.release(&name, &grant.key).await.unwrap();
    }
}

#[tokio::test]
async fn six_nodes_hold_three_replicas_of_each_group_and_survive_a_kill() {
    let mut cluster = Cluster::processes(6, GROUPS, EXTRA).await;
    let nodes: Vec<u64> = (1..=6).collect();
    let voters = cluster.wait_placed(&nodes).await;
    let placement = Placement::new(GROUPS, &nodes, 3);
    for (g, v) in voters.iter().enumerate() {
        assert_eq!(v.len(), 3, "group {g}: {v:?}");
        assert_eq!(v.as_slice(), placement.replicas(g as u32));
    }
    assert!(spread(nodes.iter().map(|&n| placement.load(n))) <= 1);
    let leaders = cluster.wait_balanced().await;
    assert!(spread(nodes.iter().map(|n| leaders.iter().filter(|l| *l == n).count())) <= 1, "{leaders:?}");

    // A node holding no replica of a group serves it in one hop, a blocking
    // wait included: the grant reaches it without it applying anything.
    let name = &names()[0];
    let outsider = *nodes.iter().find(|n| !placement.replicas(0).contains(n)).unwrap();
    let holder = cluster.client(1).await;
    let held = holder.acquire(name, AcquireOptions::default()).await.unwrap();
    let mut raw = cluster.raw(outsider).await;
    let wait = pb::AcquireRequest { name: name.as_bytes().to_vec(), wait_ms: 20_000, ..Default::default() };
    let waiting = tokio::spawn(async move { raw.acquire(wait).await.map(|r| r.into_inner()) });
    wait_for("the outsider's wait to queue", Duration::from_secs(10), || async {
        let lock = holder.describe(name).await.ok()?.lock?;
        (!lock.waiters.is_empty()).then_some(())
    })
    .await;
    holder.release(name, &held.key).await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("granted").unwrap().unwrap();
    assert!(granted.fencing_token > held.fencing_token);
    assert_eq!(granted.header.unwrap().node_id, outsider, "answered by the node the client asked");
    holder.release(name, &granted.key).await.unwrap();
    every_group_serves(&cluster.client(outsider).await).await;

    // A session on a node holding no replica of the lock's group keeps its
    // grant alive past the TTL, and releases it when it ends.
    let session = cluster.client(outsider).await.session(Some(1000)).await.unwrap();
    let short = AcquireOptions { ttl_ms: Some(1000), ..Default::default() };
    let kept = session.acquire(name, short).await.unwrap();
    let wait = AcquireOptions { wait_ms: 2500, ..Default::default() };
    let refused = holder.acquire(name, wait).await.unwrap_err();
    assert_eq!(refused.code, shardlock::error::ErrorCode::WaitTimeout, "the session kept its grant past 1 s");
    session.close();
    wait_for("the ended session's grant to be released", Duration::from_secs(10), || async {
        holder.describe(name).await.ok()?.lock.is_none_or(|l| l.holders.is_empty()).then_some(())
    })
    .await;
    let next = holder.acquire(name, AcquireOptions::default()).await.unwrap();
    assert!(next.fencing_token > kept.fencing_token);
    holder.release(name, &next.key).await.unwrap();

    // A waiter whose node dies leaves the queue at once (the serving node
    // sees that node's connection close), not at its wait deadline.
    let held = holder.acquire(name, AcquireOptions::default()).await.unwrap();
    let doomed = *nodes.iter().rev().find(|n| !placement.replicas(0).contains(n) && **n != outsider).unwrap();
    let mut raw = cluster.raw(doomed).await;
    let wait = pb::AcquireRequest { name: name.as_bytes().to_vec(), wait_ms: 120_000, ..Default::default() };
    let _abandoned = tokio::spawn(async move { raw.acquire(wait).await });
    let waiters = || async { holder.describe(name).await.ok()?.lock.map(|l| l.waiters.len()) };
    wait_for("the doomed node's wait to queue", Duration::from_secs(10), || async {
        (waiters().await? == 1).then_some(())
    })
    .await;
    cluster.kill(doomed);
    wait_for("the dead node's waiter to leave the queue", Duration::from_secs(3), || async {
        (waiters().await? == 0).then_some(())
    })
    .await;
    holder.release(name, &held.key).await.unwrap();
    cluster.restart(doomed).await;

    // kill -9 of the node leading the most groups: one election, then all
    // locks are available again.
    let victim = *nodes.iter().max_by_key(|n| leaders.iter().filter(|l| l == n).count()).unwrap();
    cluster.kill(victim);
    let rest: Vec<u64> = nodes.iter().copied().filter(|n| *n != victim).collect();
    let survivor = cluster.client(rest[0]).await;
    every_group_serves(&survivor).await;
    let status = survivor.status().await.unwrap();
    assert!(status.group_status.iter().all(|g| g.leader_id != victim && g.leader_id != 0));
}

#[tokio::test]
async fn a_seventh_node_takes_replicas_and_a_removed_node_gives_its_own_away() {
    let mut cluster = Cluster::processes(6, GROUPS, EXTRA).await;
    let six: Vec<u64> = (1..=6).collect();
    cluster.wait_placed(&six).await;
    let client = cluster.client(1).await;
    let long = AcquireOptions { ttl_ms: Some(300_000), ..Default::default() };
    let mut held = Vec::new();
    for name in names() {
        held.push((name.clone(), client.acquire(&name, long.clone()).await.unwrap()));
    }

    // Requests keep flowing while replicas move; the client's retries cover
    // leader changes, so none may fail.
    let load = cluster.client(2).await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let traffic = tokio::spawn(async move {
        let mut cycles = 0u32;
        while !*stopped.borrow_and_update() {
            let name = format!("moving/{}", cycles % 40);
            let grant = load.acquire(&name, AcquireOptions::default()).await.expect("acquire while moving");
            load.release(&name, &grant.key).await.expect("release while moving");
            cycles += 1;
        }
        cycles
    });

    let seven = cluster.spawn_joiner().await;
    let (c, p) = (cluster.addr(seven), cluster.peer_addr(seven));
    let seven_nodes: Vec<u64> = (1..=7).collect();
    let share = Placement::new(GROUPS, &seven_nodes, 3).load(seven) as u32;
    assert_eq!(client.add_node(seven, &c, &p).await.unwrap(), share);
    let voters = cluster.wait_placed(&seven_nodes).await;
    assert_eq!(voters.iter().filter(|v| v.contains(&seven)).count() as u32, share);
    let newcomer = cluster.client(seven).await;
    for (name, grant) in &held {
        let lock = newcomer.describe(name).await.unwrap().lock.unwrap();
        assert_eq!(lock.holders[0].fencing_token, grant.fencing_token, "{name} kept its holder");
    }

    let gone = 3;
    let rest: Vec<u64> = seven_nodes.iter().copied().filter(|n| *n != gone).collect();
    client.remove_node(gone).await.unwrap();
    let voters = cluster.wait_placed(&rest).await;
    assert!(voters.iter().all(|v| v.len() == 3 && !v.contains(&gone)), "{voters:?}");
    let _ = stop.send(true);
    let cycles = tokio::time::timeout(Duration::from_secs(30), traffic).await.expect("traffic stops").unwrap();
    assert!(cycles > 0);
    cluster.kill(gone);
    for (name, grant) in &held {
        client.release(name, &grant.key).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A node applies none of a group's entries once its replica moves away, so
/// a blocking acquire waiting there would never hear of its grant. It is
/// answered at once with a retryable error instead, and the client's retry
/// with the same key, on a node that holds a replica, keeps its place.
#[tokio::test]
async fn a_wait_on_a_node_whose_replica_moves_away_is_answered_and_its_retry_keeps_its_place() {
    let mut cluster = Cluster::processes(4, GROUPS, EXTRA).await;
    let (four, five): (Vec<u64>, Vec<u64>) = ((1..=4).collect(), (1..=5).collect());
    cluster.wait_placed(&four).await;
    let (before, after) = (Placement::new(GROUPS, &four, 3), Placement::new(GROUPS, &five, 3));
    let (group, leaving) = (0..GROUPS)
        .find_map(|g| before.replicas(g).iter().find(|n| !after.replicas(g).contains(n)).map(|n| (g, *n)))
        .expect("adding a fifth node moves a replica");
    let name = names()[group as usize].clone();
    let staying = *after.replicas(group).iter().find(|n| four.contains(n)).expect("a replica stays");

    let holder = cluster.client(staying).await;
    let held = holder.acquire(&name, AcquireOptions { ttl_ms: Some(60_000), ..Default::default() }).await.unwrap();
    let wait = |key: &str| pb::AcquireRequest {
        name: name.as_bytes().to_vec(),
        key: key.to_owned(),
        ttl_ms: Some(60_000),
        wait_ms: 40_000,
        ..Default::default()
    };
    let mut on_leaving = cluster.raw(leaving).await;
    let first = wait("mover");
    let waiting = tokio::spawn(async move { on_leaving.acquire(first).await });
    let waiters = |n: usize| {
        let (holder, name) = (&holder, &name);
        move || async move { (holder.describe(name).await.ok()?.lock?.waiters.len() == n).then_some(()) }
    };
    wait_for("the wait on the leaving replica to queue", Duration::from_secs(10), waiters(1)).await;

    let joiner = cluster.spawn_joiner().await;
    let (c, p) = (cluster.addr(joiner), cluster.peer_addr(joiner));
    holder.add_node(joiner, &c, &p).await.unwrap();
    cluster.wait_placed(&five).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the wait on the node that left the group is answered, not left hanging")
        .unwrap()
        .expect_err("no grant was made yet");
    assert_eq!(answer.code(), tonic::Code::Unavailable, "a retryable answer: {answer:?}");

    // Someone queues after the mover; the mover's retry keeps its place.
    let mut later = cluster.raw(staying).await;
    let second = wait("later");
    let later = tokio::spawn(async move { later.acquire(second).await });
    wait_for("the later wait to queue", Duration::from_secs(10), waiters(2)).await;
    let mut retry = cluster.raw(staying).await;
    let again = wait("mover");
    let retried = tokio::spawn(async move { retry.acquire(again).await });
    holder.release(&name, &held.key).await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(10), retried).await.expect("granted").unwrap().unwrap();
    assert_eq!(granted.into_inner().key, "mover", "the retry kept its place ahead of the later waiter");
    holder.release(&name, "mover").await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(10), later).await.expect("granted").unwrap().unwrap();
    holder.release(&name, &granted.into_inner().key).await.unwrap();
}

/// A replica removed while its node was down (so nobody could tell it)
/// learns it left from the group's leader once it is back, through the
/// node pings: it stops claiming the group and placement settles.
#[tokio::test]
async fn a_replica_removed_while_its_node_was_down_learns_it_left() {
    let mut cluster = Cluster::processes(4, GROUPS, EXTRA).await;
    let (four, five): (Vec<u64>, Vec<u64>) = ((1..=4).collect(), (1..=5).collect());
    cluster.wait_placed(&four).await;
    let (before, after) = (Placement::new(GROUPS, &four, 3), Placement::new(GROUPS, &five, 3));
    let leaving = (1..=4)
        .find(|n| (0..GROUPS).any(|g| before.replicas(g).contains(n) && !after.replicas(g).contains(n)))
        .expect("adding a fifth node moves a replica");
    let admin_node = *four.iter().find(|n| **n != leaving).unwrap();
    cluster.kill(leaving);
    let joiner = cluster.spawn_joiner().await;
    let admin = cluster.client(admin_node).await;
    admin.add_node(joiner, &cluster.addr(joiner), &cluster.peer_addr(joiner)).await.unwrap();
    let up: Vec<u64> = five.iter().copied().filter(|n| *n != leaving).collect();
    cluster.wait_placed(&up).await;
    cluster.restart(leaving).await;
    // Every node, the one that was down included, sees every group on its
    // placement: the returning node no longer claims what it lost.
    cluster.wait_placed(&five).await;
    every_group_serves(&cluster.client(leaving).await).await;
}
