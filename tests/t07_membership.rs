//! Membership: a node joins every group (learner first, then voter) and
//! another leaves, while the locks stay available.

use std::time::Duration;

use shardlock::client::AcquireOptions;

use crate::fixtures::harness::{wait_for, Cluster};

const GROUPS: u32 = 4;

#[tokio::test]
async fn nodes_join_and_leave_every_group() {
    let mut cluster = Cluster::processes(3, GROUPS, "").await;
    let client = cluster.client(2).await;
    let held =
        client.acquire("member/a", AcquireOptions { ttl_ms: Some(120_000), ..Default::default() }).await.unwrap();

    // Phase 1: node 4 starts without bootstrapping, then an operator adds it.
    let four = cluster.spawn_joiner().await;
    let (c, p) = (cluster.addr(four), cluster.peer_addr(four));
    assert_eq!(client.add_node(four, &c, &p).await.unwrap(), GROUPS);
    assert_eq!(client.add_node(four, &c, &p).await.unwrap(), GROUPS, "adding twice is harmless");
    let joined = cluster.client(four).await;
    wait_for("node 4 to be a voter of every group, with the log applied", Duration::from_secs(30), || async {
        let status = joined.status().await.ok()?;
        let ok = status.group_status.iter().all(|g| g.voters == [1, 2, 3, 4] && g.leader_id != 0);
        ok.then_some(())
    })
    .await;
    let lock = joined.describe("member/a").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].key, held.key);

    // Phase 2: node 1 leaves every group, then stops; the locks stay.
    assert_eq!(client.remove_node(1).await.unwrap(), GROUPS);
    wait_for("node 1 out of every group", Duration::from_secs(30), || async {
        let status = client.status().await.ok()?;
        let ok = status.group_status.iter().all(|g| g.voters == [2, 3, 4] && ![0, 1].contains(&g.leader_id));
        ok.then_some(())
    })
    .await;
    cluster.kill(1);
    let lock = client.describe("member/a").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].fencing_token, held.fencing_token);
    let next = joined.acquire("member/b", AcquireOptions::default()).await.unwrap();
    assert!(next.fencing_token > 0);
    client.release("member/a", &held.key).await.unwrap();
}
