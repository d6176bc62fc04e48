//! A short fault-injection run: real nodes whose links go through fault
//! proxies, concurrent clients on a mutex, a semaphore and a readers-writer
//! lock, campaigners and an observer of an election, and every fault kind
//! in turn — kill -9 of a leader or a follower, SIGSTOP past the lease,
//! the leader isolated past the lease, a follower alone (and a 2|3 split
//! with 5 nodes), a one-way partition, delay with jitter on every link,
//! leadership transfers (drain and restart), a slow disk on a leader, a
//! whole-cluster crash — each healed; then the checker judges the history.
//!
//! A second run replaces nodes one by one on 6 nodes at factor 3 (add a
//! fresh node, let its replicas move, remove the oldest) while kill -9 and
//! SIGSTOP hit other nodes.
//!
//! After every heal each lock must be granted again within its TTL plus an
//! election timeout, and the clients must make progress again.

use std::time::{Duration, Instant};

use shardlock::client::{AcquireOptions, Client};
use shardlock::testing::SLOW_DISK_SWITCH;

use crate::fixtures::checker::{check, explain, Violation};
use crate::fixtures::elections::{problems, Elections};
use crate::fixtures::fault_log::{report, FaultLog, FaultRun};
use crate::fixtures::harness::{wait_for, Cluster};
use crate::fixtures::links::Links;
use crate::fixtures::workload::{keep_fault_for, Workload, LOCKS, TTL};

/// `raft.election_timeout_max_ms` of the harness's nodes.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a partition lasts: past the lease, so leases expire under it.
const PARTITION: Duration = Duration::from_millis(TTL.as_millis() as u64 + 1000);
const MUTEX: &str = LOCKS[0].0;
const SEM: &str = LOCKS[1].0;

/// Cycles the clients must complete to count as making progress.
const PROGRESS: usize = 20;

/// Ends fault `kind` injected at `injected` (already healed): both locks
/// are granted again in time, then the clients make progress; logs the run.
async fn healed(log: &mut FaultLog, kind: &str, injected: Instant, work: &Workload, client: &Client) {
    let healed = Instant::now();
    let bound = TTL + ELECTION_TIMEOUT;
    let (a, b) = tokio::join!(
        work.probe(client, LOCKS[0].0, LOCKS[0].1, bound),
        work.probe(client, LOCKS[1].0, LOCKS[1].1, bound)
    );
    let regrant = healed.elapsed();
    for (probe, (lock, _)) in [a, b].into_iter().zip(LOCKS) {
        if let Err(e) = probe {
            let now = client.describe(lock).await.map(|d| format!("{:?}", d.lock)).unwrap_or_else(|e| e.message);
            let failed = work.failed_acquires_since(injected).join("\n  ");
            let holds = work.holds_since(lock, injected).join("\n  ");
            panic!(
                "{lock} was not grantable after healing {kind}: {e}; it is now {now}; \
                 the workers' acquires that failed since the fault:\n  {failed}\n\
                 its holds since the fault, healed at +{} ms:\n  {holds}\nin flight at +{} ms:\n  {}\n\
                 the client's view: {:?}",
                (healed - injected).as_millis(),
                injected.elapsed().as_millis(),
                work.in_flight(injected).join("\n  "),
                client.topology()
            );
        }
    }
    assert!(regrant <= bound, "the locks took {regrant:?} to be granted after healing {kind}");
    wait_for(&format!("progress after {kind}"), Duration::from_secs(60), work.progress(work.done() + PROGRESS)).await;
    log.push(FaultRun { kind: kind.to_owned(), injected, regrant, recovered: Instant::now() });
}

/// The highest node id not in `not`.
fn other_than(cluster: &Cluster, not: &[u64]) -> u64 {
    cluster.nodes.iter().map(|n| n.id).filter(|id| !not.contains(id)).max().expect("another node")
}

/// The highest id of a voter of lock `name`'s group other than `leader`
/// (on 3 nodes, the highest other node).
async fn follower_of(cluster: &Cluster, name: &str, leader: u64) -> u64 {
    let group = shardlock::routing::group_of(name.as_bytes(), cluster.groups) as usize;
    let status = cluster.client(leader).await.status().await.expect("the leader's status");
    let voters = &status.group_status[group].voters;
    voters.iter().copied().filter(|v| *v != leader).max().expect("another voter")
}

fn links(cluster: &Cluster) -> &Links {
    cluster.links.as_ref().expect("a partitionable cluster")
}

/// The faults of one round, in order; each is injected, held and healed
/// by [`Fault::inject`], then checked by [`healed`].
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    PauseLeader,
    KillFollower,
    IsolateLeader,
    IsolateFollower,
    /// 2|3 with the leader in the minority (5 nodes only).
    MinorityLeader,
    /// The leader cannot send (even rounds) or receive (odd rounds).
    OneWay,
    SlowLinks,
    Drain,
    SlowDisk,
    KillAll,
}

const FAULTS: &[Fault] = &[
    Fault::KillLeader,
    Fault::PauseLeader,
    Fault::KillFollower,
    Fault::IsolateLeader,
    Fault::IsolateFollower,
    Fault::MinorityLeader,
    Fault::OneWay,
    Fault::SlowLinks,
    Fault::Drain,
    Fault::SlowDisk,
    Fault::KillAll,
];

impl Fault {
    fn name(self, round: usize) -> &'static str {
        match self {
            Fault::KillLeader => "kill -9 leader",
            Fault::PauseLeader => "SIGSTOP leader past the ttl",
            Fault::KillFollower => "kill -9 follower",
            Fault::IsolateLeader => "leader isolated past the ttl",
            Fault::IsolateFollower => "a follower alone (1|2 or 1|4 split)",
            Fault::MinorityLeader => "2|3 split, the leader in the minority",
            Fault::OneWay if round % 2 == 0 => "one-way: leader cannot send",
            Fault::OneWay => "one-way: leader cannot receive",
            Fault::SlowLinks => "delay 30ms + jitter 0-70ms + 5% loss on every link",
            Fault::Drain => "leader transfers: drain (SIGTERM) and restart",
            Fault::SlowDisk => "slow disk (fsync +200ms) on the leader",
            Fault::KillAll => "kill -9 every node",
        }
    }

    /// Whether the fault applies to a cluster of `nodes`.
    fn applies(self, nodes: usize) -> bool {
        !matches!(self, Fault::MinorityLeader) || nodes == 5
    }

    /// Injects the fault, keeps it as long as it must last (waiting for the
    /// progress it must still allow), and heals it.
    async fn inject(self, cluster: &mut Cluster, round: usize, work: &Workload) {
        let progress = |n| work.progress(work.done() + n);
        match self {
            Fault::KillLeader => {
                let leader = cluster.leader_of(MUTEX, 2).await;
                cluster.kill(leader);
                wait_for("progress without the killed leader", Duration::from_secs(30), progress(PROGRESS)).await;
                cluster.restart(leader).await;
            }
            Fault::PauseLeader => {
                let leader = cluster.leader_of(SEM, 1).await;
                cluster.pause(leader, true);
                keep_fault_for(PARTITION).await;
                cluster.pause(leader, false);
            }
            Fault::KillFollower => {
                let leader = cluster.leader_of(MUTEX, 1).await;
                let follower = follower_of(cluster, MUTEX, leader).await;
                cluster.kill(follower);
                wait_for("progress without the follower", Duration::from_secs(30), progress(PROGRESS)).await;
                cluster.restart(follower).await;
            }
            Fault::IsolateLeader | Fault::IsolateFollower | Fault::MinorityLeader => {
                let leader = cluster.leader_of(MUTEX, 1).await;
                let side = match self {
                    Fault::IsolateLeader => vec![leader],
                    Fault::IsolateFollower => vec![follower_of(cluster, MUTEX, leader).await],
                    _ => vec![leader, other_than(cluster, &[leader])],
                };
                links(cluster).split(&side);
                keep_fault_for(PARTITION).await;
                links(cluster).heal();
            }
            Fault::OneWay => {
                // The leader's requests (and their answers) are lost, or its
                // peers' requests to it are; the other direction works.
                let leader = cluster.leader_of(MUTEX, 1).await;
                for peer in cluster.alive().into_iter().filter(|n| *n != leader) {
                    match round % 2 {
                        0 => links(cluster).cut(leader, peer),
                        _ => links(cluster).cut(peer, leader),
                    }
                }
                keep_fault_for(PARTITION).await;
                links(cluster).heal();
            }
            Fault::SlowLinks => {
                // Round trips (30-170 ms) longer than a heartbeat interval
                // (100 ms), 5% of the chunks lost (resent 200 ms late): the
                // clients must still make progress, only slower.
                links(cluster).delay_all(Duration::from_millis(30), Duration::from_millis(70), 50);
                wait_for("progress while every link is slow", Duration::from_secs(20), progress(PROGRESS / 2)).await;
                links(cluster).heal();
            }
            Fault::Drain => {
                // Leadership moves twice: the drain hands the leader's groups
                // to its peers, the balancer hands them back after restart.
                let leader = cluster.leader_of(MUTEX, 1).await;
                cluster.terminate(leader).await;
                cluster.restart(leader).await;
            }
            Fault::SlowDisk => {
                // Every WAL sync of the node leading the mutex turns 200 ms
                // late while the switch file exists.
                let leader = cluster.leader_of(MUTEX, 1).await;
                let switch = cluster.data_dir(leader).join(SLOW_DISK_SWITCH);
                std::fs::write(&switch, b"").expect("turn the slow disk on");
                wait_for("progress with a slow disk", Duration::from_secs(30), progress(PROGRESS)).await;
                keep_fault_for(PARTITION).await;
                std::fs::remove_file(&switch).expect("turn the slow disk off");
            }
            Fault::KillAll => {
                let all: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
                for id in &all {
                    cluster.kill(*id);
                }
                for id in &all {
                    cluster.restart(*id).await;
                }
            }
        }
    }
}

/// One round of every fault of [`FAULTS`] that applies to the cluster.
async fn round(cluster: &mut Cluster, round: usize, work: &Workload, client: &Client, log: &mut FaultLog) {
    let nodes = cluster.nodes.len();
    for fault in FAULTS.iter().copied().filter(|f| f.applies(nodes)) {
        let at = Instant::now();
        fault.inject(cluster, round, work).await;
        healed(log, fault.name(round), at, work, client).await;
    }
}

/// Every node may get a slow disk (switched on per node, see above).
const SLOW_DISK_READY: &str = "[storage]\ntest_only_sync_delay_ms = 200\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_stay_safe_through_crashes_pauses_and_partitions() {
    // 3 nodes in `make test`; `CHAOS_NODES=5 tests/chaos.sh N` runs 5 (and a 2|3 split).
    let nodes: usize = std::env::var("CHAOS_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    assert!(nodes == 3 || nodes == 5, "CHAOS_NODES must be 3 or 5");
    chaos(nodes, 4, SLOW_DISK_READY, env_count("CHAOS_ROUNDS")).await;
}

/// The same round on 6 nodes, each group on 3 of them: the faults hit the
/// lock's own replicas, and the clients' nodes may hold none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_stay_safe_on_six_nodes_at_replication_factor_three() {
    chaos(6, 6, &format!("replication_factor = 3\n{SLOW_DISK_READY}"), env_count("CHAOS_ROUNDS_FACTOR3")).await;
}

/// Rolling replacement, as an operator replaces machines, on 6 nodes at
/// factor 3: a fresh node is added and the group moves onto it settle,
/// then the oldest node is removed, its replicas move away and it stops —
/// while kill -9 and SIGSTOP hit other nodes during each move. One
/// replacement in `make test`; `tests/chaos.sh` runs more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_stay_safe_through_rolling_replacement_under_faults() {
    if cfg!(feature = "chaos-broken") {
        return; // the broken build is caught by the runs above
    }
    let replacements = env_count("CHAOS_REPLACEMENTS");
    let mut run = Run::start(Cluster::processes(6, 6, "replication_factor = 3\n").await).await;
    let started = Instant::now();
    for _ in 0..replacements {
        replace_oldest(&mut run).await;
    }
    run.judge(started.elapsed()).await;
}

/// Kills one node and freezes another (neither in `spare`) while a
/// membership change moves replicas; restarts and thaws them.
async fn strike_others(cluster: &mut Cluster, spare: &[u64]) {
    let others: Vec<u64> = cluster.alive().into_iter().filter(|n| !spare.contains(n)).collect();
    let (killed, frozen) = (others[others.len() - 1], others[0]);
    cluster.kill(killed);
    cluster.pause(frozen, true);
    keep_fault_for(Duration::from_secs(2)).await;
    cluster.pause(frozen, false);
    cluster.restart(killed).await;
}

/// One replacement: add a fresh node, then remove the oldest, each move
/// under other nodes' faults, each judged like a fault's heal.
async fn replace_oldest(run: &mut Run) {
    let oldest = *run.cluster.alive().iter().min().expect("a node");
    let at = Instant::now();
    let fresh = run.cluster.spawn_joiner().await;
    let (addr, peer) = (run.cluster.addr(fresh), run.cluster.peer_addr(fresh));
    run.client.add_node(fresh, &addr, &peer).await.expect("add the fresh node");
    strike_others(&mut run.cluster, &[oldest, fresh]).await;
    run.cluster.wait_placed(&run.cluster.alive()).await;
    healed(
        &mut run.log,
        "membership: add a node (kill -9 and SIGSTOP of others meanwhile)",
        at,
        &run.work,
        &run.client,
    )
    .await;

    let at = Instant::now();
    run.client.remove_node(oldest).await.expect("remove the oldest node");
    strike_others(&mut run.cluster, &[oldest, fresh]).await;
    let members: Vec<u64> = run.cluster.alive().into_iter().filter(|n| *n != oldest).collect();
    run.cluster.wait_placed(&members).await;
    run.cluster.kill(oldest);
    healed(
        &mut run.log,
        "membership: remove a node (kill -9 and SIGSTOP of others meanwhile)",
        at,
        &run.work,
        &run.client,
    )
    .await;
}

/// How many rounds the variable `name` asks for: 1 in `make test`,
/// more from `tests/chaos.sh`.
fn env_count(name: &str) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(1).clamp(1, 500)
}

async fn chaos(nodes: usize, groups: u32, extra: &str, rounds: usize) {
    let mut run = Run::start(Cluster::start_partitionable(nodes, groups, extra).await).await;
    // The broken build is caught without faults (and its tables would not
    // even pass the snapshot check of a restarting node).
    let rounds = if cfg!(feature = "chaos-broken") { 0 } else { rounds };
    let started = Instant::now();
    for r in 0..rounds {
        round(&mut run.cluster, r, &run.work, &run.client, &mut run.log).await;
    }
    run.judge(started.elapsed()).await;
}

/// A fault run: the cluster, its clients' workload, the grants that must
/// survive, and the log of faults.
struct Run {
    t0: Instant,
    cluster: Cluster,
    client: Client,
    work: Workload,
    elections: Elections,
    durable: Vec<(String, shardlock::proto::v1::AcquireResponse)>,
    log: FaultLog,
}

impl Run {
    /// Takes the grants that must survive, then starts the workload.
    async fn start(cluster: Cluster) -> Self {
        let t0 = Instant::now();
        let addrs: Vec<String> = cluster.alive().iter().map(|id| cluster.addr(*id)).collect();
        let seeds: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let client = Client::connect_any(&seeds).await.unwrap();

        // Grants and releases acknowledged before the faults must survive them.
        let long = AcquireOptions { ttl_ms: Some(120_000), ..Default::default() };
        let mut durable = Vec::new();
        for i in 0..8 {
            let name = format!("chaos/durable/{i}");
            durable.push((name.clone(), client.acquire(&name, long.clone()).await.unwrap()));
            let gone = format!("chaos/released/{i}");
            let g = client.acquire(&gone, long.clone()).await.unwrap();
            client.release(&gone, &g.key).await.unwrap();
        }

        let work = Workload::start(&client, 6);
        let elections = Elections::start(&client, 3);
        wait_for("the clients to get going", Duration::from_secs(20), work.progress(PROGRESS)).await;
        Self { t0, cluster, client, work, elections, durable, log: FaultLog::default() }
    }

    /// Stops the workload and judges what the clients saw: no violation,
    /// and the acknowledged grants and releases survived.
    async fn judge(self, faulty: Duration) {
        let Self { t0, cluster, client, work, elections, durable, log } = self;
        let (record, errors) = work.stop().await;
        let (elected, campaign_errors) = elections.stop().await;
        cluster.wait_ready().await;

        // Judge the history.
        let record = record.lock().unwrap();
        let mut violations = check(&record.history);
        violations.extend(record.resource.check());
        eprintln!(
            "chaos: operations checked: {}; faults injected: {} in {faulty:.1?}; violations: {}; \
             rejected stale writes: {}; client errors: {errors} acquiring, {} releasing\n{}",
            record.history.len(),
            log.runs.len(),
            violations.len(),
            record.resource.rejected,
            record.failed_releases.len(),
            report(&log.summary(&record.successes))
        );
        for (lock, token, why) in &record.failed_releases {
            eprintln!("chaos: release of {lock} token {token} failed: {why}");
        }
        if cfg!(feature = "chaos-broken") {
            // The build that skips the holder check must be caught.
            assert!(
                violations.iter().any(|v| matches!(v, Violation::Overlap { .. })),
                "the checker missed a lock that admits two holders"
            );
            return;
        }
        for v in &violations {
            eprintln!("chaos: violation {v:?}");
            for h in explain(&record.history, v) {
                let at = |t: Instant| t.duration_since(t0).as_millis();
                let released = h.released.map(at);
                eprintln!(
                    "chaos:   client {} token {} sent {} granted {} released {released:?} (ms since start)",
                    h.client,
                    h.token,
                    at(h.sent),
                    at(h.granted)
                );
            }
        }
        if !violations.is_empty() {
            for run in &log.runs {
                let (a, b) =
                    (run.injected.duration_since(t0).as_millis(), run.recovered.duration_since(t0).as_millis());
                eprintln!("chaos:   fault {} from {a} to {b} ms", run.kind);
            }
        }
        assert_eq!(violations, vec![], "the lock service broke a promise");
        drop(record);

        // Judge the elections.
        let elected = elected.lock().unwrap();
        let broken = problems(&elected);
        let observed: usize = elected.observed.iter().map(Vec::len).sum();
        eprintln!(
            "chaos: elections: leaderships won: {}; leader changes observed: {observed} in {} stream(s); \
             campaign errors: {campaign_errors}; problems: {}",
            elected.won.len(),
            elected.observed.len(),
            broken.len()
        );
        assert!(!elected.won.is_empty(), "no campaigner ever led");
        assert_eq!(broken, Vec::<String>::new(), "an election broke a promise");
        drop(elected);

        // Acknowledged grants and releases survived.
        for (name, grant) in &durable {
            let lock = client.describe(name).await.unwrap().lock.expect("durable lock");
            assert_eq!(
                (lock.holders[0].key.as_str(), lock.holders[0].fencing_token),
                (grant.key.as_str(), grant.fencing_token)
            );
        }
        for i in 0..8 {
            let lock = client.describe(&format!("chaos/released/{i}")).await.unwrap().lock;
            assert!(lock.is_none_or(|l| l.holders.is_empty()), "a released lock is held again");
        }
    }
}
