//! `watch`, `elect`, `observe` and `leader`: streams of changes, and
//! elections.

use std::process::ExitCode;

use futures::StreamExt;
use serde_json::json;
use shardlock::client::{CampaignOptions, Observation, WatchItem, WatchOptions, WatchTarget};
use shardlock::proto::v1 as pb;

use super::commands::{connect, shown, EXIT_LOCK_LOST};
use super::supervise::{exit_code, supervise, Ended};
use super::Target;

/// Exit code of `watch` and `observe` when the stream was compacted.
const EXIT_COMPACTED: u8 = 3;

fn kind_name(kind: i32) -> &'static str {
    pb::watch_event::Kind::try_from(kind).map_or("unknown", |k| match k {
        pb::watch_event::Kind::Granted => "granted",
        pb::watch_event::Kind::Released => "released",
        pb::watch_event::Kind::Expired => "expired",
        pb::watch_event::Kind::ForceReleased => "force_released",
        pb::watch_event::Kind::Queued => "queued",
        pb::watch_event::Kind::WaitEnded => "wait_ended",
        pb::watch_event::Kind::ValueChanged => "value_changed",
        pb::watch_event::Kind::Downgraded => "downgraded",
        pb::watch_event::Kind::Unspecified => "unknown",
    })
}

fn print_event(e: &pb::WatchEvent, as_json: bool) {
    let (kind, name, value) = (kind_name(e.kind), String::from_utf8_lossy(&e.name), e.value.as_deref().map(shown));
    let mode = if e.mode == pb::Mode::Shared as i32 { "shared" } else { "exclusive" };
    if as_json {
        println!(
            "{}",
            json!({"kind": kind, "group": e.group, "index": e.index, "name": name, "key": e.key,
                "fencing_token": e.fencing_token, "permits": e.permits, "mode": mode, "value": value,
                "reason": e.reason})
        );
        return;
    }
    let value = value.map(|v| format!(" value={v}")).unwrap_or_default();
    let reason = if e.reason.is_empty() { String::new() } else { format!(" ({})", e.reason) };
    println!(
        "{}/{} {kind} {name} key={} token={} permits={} {mode}{value}{reason}",
        e.group, e.index, e.key, e.fencing_token, e.permits
    );
}

fn compacted(c: &pb::WatchCompacted) -> ExitCode {
    eprintln!(
        "shardlock: the history of group {} now starts at index {} (the group is at {}): re-read, then watch with --from {}",
        c.group,
        c.oldest_index,
        c.current_index,
        c.current_index + 1
    );
    ExitCode::from(EXIT_COMPACTED)
}

/// Prints the events of `name` (or of every lock under it with `prefix`)
/// until `count` events were printed, or forever.
pub async fn watch(
    target: &Target,
    name: &str,
    prefix: bool,
    from: Option<u64>,
    count: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let client = connect(target).await?;
    let mut opts = WatchOptions::default();
    if let Some(from) = from {
        anyhow::ensure!(!prefix, "--from is for one lock; a prefix watch starts now");
        opts.start.insert(client.topology().group(name), from);
    }
    let what = if prefix { WatchTarget::Prefix(name.to_owned()) } else { WatchTarget::Name(name.to_owned()) };
    let mut stream = Box::pin(client.watch(what, opts));
    let mut printed = 0;
    while count.is_none_or(|c| printed < c) {
        match stream.next().await {
            Some(Ok(WatchItem::Events(events))) => {
                for e in events.iter().take(count.map_or(usize::MAX, |c| c - printed)) {
                    print_event(e, target.json);
                    printed += 1;
                }
            }
            Some(Ok(WatchItem::Progress(_))) => {}
            Some(Ok(WatchItem::Compacted(c))) => return Ok(compacted(&c)),
            Some(Err(err)) => return Err(err.into()),
            None => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_leader(index: u64, leader: Option<&pb::Leadership>, as_json: bool) {
    match (leader, as_json) {
        (Some(l), true) => println!(
            "{}",
            json!({"index": index, "leader": {"key": l.key, "term": l.term, "value": shown(&l.value), "ttl_ms": l.ttl_ms}})
        ),
        (None, true) => println!("{}", json!({"index": index, "leader": null})),
        (Some(l), false) => println!("{index} leader key={} term={} value={}", l.key, l.term, shown(&l.value)),
        (None, false) => println!("{index} no leader"),
    }
}

/// Prints `election`'s leader now, then every change (up to `count`).
pub async fn observe(target: &Target, election: &str, count: Option<usize>) -> anyhow::Result<ExitCode> {
    let client = connect(target).await?;
    let mut stream = Box::pin(client.observe(election));
    let mut printed = 0;
    while count.is_none_or(|c| printed < c) {
        match stream.next().await {
            Some(Ok(Observation::Leader { index, leader })) => {
                print_leader(index, leader.as_ref(), target.json);
                printed += 1;
            }
            Some(Ok(Observation::Compacted(c))) => return Ok(compacted(&c)),
            Some(Err(err)) => return Err(err.into()),
            None => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `election`'s leader (a linearizable read).
pub async fn leader(target: &Target, election: &str) -> anyhow::Result<()> {
    let leader = connect(target).await?.leader(election).await?;
    match (leader, target.json) {
        (Some(l), true) => println!(
            "{}",
            json!({"election": election, "key": l.key, "term": l.term, "value": shown(&l.value), "ttl_ms": l.ttl_ms})
        ),
        (None, true) => println!("{}", json!({"election": election, "leader": null})),
        (Some(l), false) => println!("key={} term={} value={}", l.key, l.term, shown(&l.value)),
        (None, false) => println!("no leader"),
    }
    Ok(())
}

/// Campaigns in `election`; once leading, runs `cmd` while leadership
/// lasts (SIGTERM when it is lost), then resigns.
pub async fn elect(
    target: &Target,
    election: &str,
    value: &str,
    opts: CampaignOptions,
    cmd: &[String],
) -> anyhow::Result<ExitCode> {
    let client = connect(target).await?;
    let leadership = client.campaign(election, value.as_bytes(), opts).await?;
    eprintln!("shardlock: leading {election} with term {}", leadership.term());
    let env = [
        ("SHARDLOCK_ELECTION", election.to_owned()),
        ("SHARDLOCK_KEY", leadership.key().to_owned()),
        ("SHARDLOCK_TERM", leadership.term().to_string()),
        ("SHARDLOCK_VALUE", value.to_owned()),
    ];
    match supervise(cmd, &env, leadership.lost()).await? {
        Ended::Exited(status) => {
            leadership.resign().await?;
            Ok(ExitCode::from(exit_code(status)))
        }
        Ended::Stopped => {
            drop(leadership);
            Ok(ExitCode::from(EXIT_LOCK_LOST))
        }
    }
}
