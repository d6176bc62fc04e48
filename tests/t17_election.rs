//! Leader election on real nodes: every call through the Rust client and
//! REST; a primary/secondary failover with three `shardlock elect`
//! processes, the leader's process killed, observed by two observers.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde_json::Value;
use shardlock::client::{CampaignOptions, Observation};
use shardlock::error::{ApiError, ErrorCode};
use shardlock::proto::v1 as pb;

use crate::fixtures::harness::{http, Cluster, CurlStream};

const GROUPS: u32 = 4;
/// `raft.election_timeout_max_ms` of the harness's nodes.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);

type Observations = std::pin::Pin<Box<dyn Stream<Item = Result<Observation, ApiError>> + Send>>;

async fn next_leader(stream: &mut Observations) -> (u64, Option<pb::Leadership>) {
    let item = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("an observation in time");
    match item.expect("the stream goes on").expect("no error") {
        Observation::Leader { index, leader } => (index, leader),
        Observation::Compacted(c) => panic!("unexpected compaction {c:?}"),
    }
}

#[tokio::test]
async fn campaign_proclaim_resign_and_observe() {
    let cluster = Cluster::start(3, GROUPS).await;
    let (a, b) = (cluster.client(1).await, cluster.client(2).await);
    let election = "jobs/primary";
    assert_eq!(a.leader(election).await.unwrap(), None);
    let mut observed: Observations = Box::pin(b.observe(election));
    assert_eq!(next_leader(&mut observed).await.1, None, "first, who leads now: nobody");

    let mut first = a.campaign(election, b"host-a", CampaignOptions::default()).await.unwrap();
    let (_, seen) = next_leader(&mut observed).await;
    let seen = seen.expect("a leader");
    assert_eq!((seen.key.as_str(), seen.term, seen.value.as_slice()), (first.key(), first.term(), &b"host-a"[..]));

    // A second campaigner waits; the leader proclaims a new value.
    let second = tokio::spawn({
        let b = b.clone();
        async move { b.campaign(election, b"host-b", CampaignOptions::default()).await }
    });
    first.proclaim(b"host-a:2").await.unwrap();
    let (_, proclaimed) = next_leader(&mut observed).await;
    let proclaimed = proclaimed.unwrap();
    assert_eq!((proclaimed.term, proclaimed.value.as_slice()), (first.term(), &b"host-a:2"[..]));
    assert_eq!(b.leader(election).await.unwrap().unwrap().value, b"host-a:2");
    let impostor = b.proclaim(election, "not-the-leader", b"x").await.unwrap_err();
    assert_eq!(impostor.code, ErrorCode::NotHolder);

    // Resigning hands leadership to the next campaigner in one entry: no
    // "no leader" between, and a higher term.
    let first_term = first.term();
    first.resign().await.unwrap();
    let next = second.await.unwrap().unwrap();
    let (_, handed) = next_leader(&mut observed).await;
    let handed = handed.expect("the next leader, with no gap");
    assert_eq!((handed.key.as_str(), handed.value.as_slice()), (next.key(), &b"host-b"[..]));
    assert!(handed.term > first_term);
    next.resign().await.unwrap();
    assert_eq!(next_leader(&mut observed).await.1, None, "nobody leads");

    // REST: campaign, leader, proclaim, resign, and observe as events.
    let addr = cluster.addr(3);
    let mut sse = CurlStream::get(&addr, "/v1/election/observe?election=jobs%2Frest");
    let (event, data) = sse.event(Duration::from_secs(10)).await.expect("the current leader");
    assert_eq!((event.as_str(), serde_json::from_str::<Value>(&data).unwrap()["leader"].is_null()), ("leader", true));
    let (code, body) =
        http(&addr, "POST", "/v1/election/campaign", r#"{"election": "jobs/rest", "value": "h1"}"#).await;
    assert_eq!(code, 200, "{body}");
    let won: Value = serde_json::from_str(&body).unwrap();
    let key = won["leader"]["key"].as_str().unwrap().to_owned();
    let (event, data) = sse.event(Duration::from_secs(10)).await.expect("the new leader");
    let data: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (event.as_str(), data["leader"]["value"].as_str(), data["leader"]["key"].as_str()),
        ("leader", Some("h1"), Some(key.as_str()))
    );
    let proclaim = format!(r#"{{"election": "jobs/rest", "key": "{key}", "value": "h1:2"}}"#);
    assert_eq!(http(&addr, "POST", "/v1/election/proclaim", &proclaim).await.0, 200);
    let (code, body) = http(&addr, "POST", "/v1/election/leader", r#"{"election": "jobs/rest"}"#).await;
    let leader: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, leader["leader"]["value"].as_str()), (200, Some("h1:2")), "{body}");
    let resign = format!(r#"{{"election": "jobs/rest", "key": "{key}"}}"#);
    assert_eq!(http(&addr, "POST", "/v1/election/resign", &resign).await.0, 200);
    let (_, body) = http(&addr, "POST", "/v1/election/leader", r#"{"election": "jobs/rest"}"#).await;
    assert!(serde_json::from_str::<Value>(&body).unwrap()["leader"].is_null(), "{body}");
}

/// A `shardlock elect` process: campaigns with `value`, then sleeps while
/// leading.
fn campaigner(addr: &str, value: &str, ttl: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_shardlock"))
        .args(["elect", "failover/db", "--value", value, "--ttl", ttl, "--addr", addr, "--", "sleep", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("shardlock elect runs")
}

/// Observations of `stream` until one names a leader other than `not`.
async fn leader_other_than(
    stream: &mut Observations,
    not: Option<&str>,
    log: &mut Vec<(u64, Option<pb::Leadership>)>,
) -> pb::Leadership {
    loop {
        let (index, leader) = next_leader(stream).await;
        log.push((index, leader.clone()));
        if let Some(l) = leader.filter(|l| Some(String::from_utf8_lossy(&l.value).as_ref()) != not) {
            return l;
        }
    }
}

#[tokio::test]
async fn primary_secondary_failover_with_killed_processes() {
    let cluster = Cluster::processes(3, GROUPS, "").await;
    // Leaders settle first: a lease runs from when its group's leader took
    // over, so a leader moved by the balancer would lengthen a failover.
    cluster.wait_balanced().await;
    let ttl = Duration::from_millis(2000);
    let mut procs: Vec<(String, tokio::process::Child)> =
        (1..=3).map(|i| (format!("db-{i}"), campaigner(&cluster.addr(i), &format!("db-{i}"), "2s"))).collect();
    let (o1, o2) = (cluster.client(1).await, cluster.client(3).await);
    let mut observers: Vec<Observations> =
        vec![Box::pin(o1.observe("failover/db")), Box::pin(o2.observe("failover/db"))];
    let mut logs = vec![Vec::new(), Vec::new()];
    let mut leader = leader_other_than(&mut observers[0], None, &mut logs[0]).await;
    let mut failovers = Vec::new();
    for _ in 0..2 {
        // Kill the leading process: its lease runs out, the next leads.
        let value = String::from_utf8_lossy(&leader.value).into_owned();
        let at = procs.iter().position(|(v, _)| *v == value).expect("the leader is one of ours");
        let (_, mut child) = procs.remove(at);
        let killed = Instant::now();
        child.kill().await.unwrap();
        let next = leader_other_than(&mut observers[0], Some(&value), &mut logs[0]).await;
        let took = killed.elapsed();
        assert!(next.term > leader.term, "terms increase: {} then {}", leader.term, next.term);
        assert!(took <= ttl + ELECTION_TIMEOUT, "failover took {took:?}, over the lease plus an election timeout");
        failovers.push(took);
        leader = next;
    }
    eprintln!("election failover: {:?} after the leader's process was killed (lease 2 s)", failovers);

    // The second observer saw the same leaders in the same order, and
    // neither saw a term twice or going back.
    while logs[1].last().and_then(|(_, l)| l.as_ref()).is_none_or(|l| l.term != leader.term) {
        let (index, l) = next_leader(&mut observers[1]).await;
        logs[1].push((index, l));
    }
    let terms = |log: &[(u64, Option<pb::Leadership>)]| -> Vec<u64> {
        log.iter().filter_map(|(_, l)| l.as_ref().map(|l| l.term)).collect()
    };
    let (t0, t1) = (terms(&logs[0]), terms(&logs[1]));
    for t in [&t0, &t1] {
        assert!(t.windows(2).all(|w| w[0] < w[1]), "terms strictly increase: {t:?}");
    }
    let from = t0.iter().position(|t| *t == t1[0]).expect("both saw the leader the second one started with");
    assert_eq!(&t0[from..], &t1[..], "both observers saw the same leaders in order");
    assert_eq!(t0.len(), 3, "three leaders: {t0:?}");

    // Losing leadership stops the command: an operator forces the last
    // leader out; its `shardlock elect` sends SIGTERM and exits 75.
    let (_, mut last) = procs.pop().expect("the last campaigner");
    o1.force_release("failover/db", None).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), last.wait()).await.expect("elect exits").unwrap();
    assert_eq!(status.code(), Some(75), "shardlock elect exits 75 when leadership is lost");
}
