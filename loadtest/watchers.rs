//! Watchers beside a run (`--watchers N`): prefix watches of the run's
//! locks, each on its own connection, spread over the nodes.
//!
//! Each counts the events it receives; the first also notes when each
//! grant's event reached it, so that after the run that time is set against
//! when the acquiring client had its reply (both on this machine's clock).
//! The difference is the delay from the leader's apply (which the reply
//! follows) to a watcher; negative when the event came first. The servers'
//! own measure, apply to send (`shardlock_watch_delay_seconds`), is scraped
//! beside it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use shardlock::client::{Client, WatchItem, WatchOptions, WatchTarget};
use shardlock::proto::v1 as pb;
use tokio::task::JoinHandle;

/// When each key's grant was answered (to its client) or seen (by the
/// first watcher).
pub type Times = Mutex<HashMap<String, Instant>>;

pub struct Watchers {
    stop: Arc<AtomicBool>,
    events: Vec<Arc<AtomicU64>>,
    compacted: Arc<AtomicU64>,
    seen: Arc<Times>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    /// Opens `n` watches of `prefix` and returns once each has sent its
    /// first item (so the run's first events are watched).
    pub async fn start(addrs: &[String], n: usize, prefix: &str) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (compacted, seen) = (Arc::new(AtomicU64::new(0)), Arc::new(Times::default()));
        let (mut events, mut tasks) = (Vec::new(), Vec::new());
        for i in 0..n {
            let addr = &addrs[i % addrs.len()];
            let client = Client::connect(addr).await.with_context(|| format!("connect {addr}"))?;
            let target = WatchTarget::Prefix(prefix.to_owned());
            let mut stream = Box::pin(client.watch(target, WatchOptions::default()));
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(WatchItem::Progress(_)))) => {}
                other => anyhow::bail!("watcher {i} did not start: {other:?}"),
            }
            let count = Arc::new(AtomicU64::new(0));
            let seen = (i == 0).then(|| seen.clone());
            let (stop, compacted, counted) = (stop.clone(), compacted.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let next = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
                    match next {
                        Err(_) => continue, // Nothing yet: look at `stop` again.
                        Ok(Some(Ok(WatchItem::Events(events)))) => {
                            counted.fetch_add(events.len() as u64, Ordering::Relaxed);
                            if let Some(seen) = &seen {
                                note_grants(seen, &events);
                            }
                        }
                        Ok(Some(Ok(WatchItem::Progress(_)))) => {}
                        Ok(Some(Ok(WatchItem::Compacted(_)))) => {
                            compacted.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Ok(_) => return,
                    }
                }
            }));
            events.push(count);
        }
        Ok(Self { stop, events, compacted, seen, tasks })
    }

    /// Stops the watchers; one line of figures for a run of `elapsed`
    /// whose grants were answered at `replied`.
    pub async fn finish(self, replied: &Times, elapsed: Duration) -> String {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let mut rates: Vec<f64> =
            self.events.iter().map(|c| c.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()).collect();
        rates.sort_by(f64::total_cmp);
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let replied = replied.lock().unwrap_or_else(|p| p.into_inner());
        let mut delays: Vec<f64> = seen
            .iter()
            .filter_map(|(key, at)| {
                let reply = replied.get(key)?;
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                Some(if at >= reply { ms(*at - *reply) } else { -ms(*reply - *at) })
            })
            .collect();
        delays.sort_by(f64::total_cmp);
        let q = |v: &[f64], q: f64| v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).copied();
        let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
        let missed = replied.len().saturating_sub(delays.len());
        format!(
            "{} watchers: events/s per watcher min {} median {}; reply→watcher ms p50 {} p99 {} ({} grants matched, {missed} unseen by the first watcher, {} before the reply); compacted {}",
            rates.len(),
            fmt(rates.first().copied()),
            fmt(q(&rates, 0.5)),
            fmt(q(&delays, 0.5)),
            fmt(q(&delays, 0.99)),
            delays.len(),
            delays.iter().filter(|d| **d < 0.0).count(),
            self.compacted.load(Ordering::Relaxed)
        )
    }
}

fn note_grants(seen: &Times, events: &[pb::WatchEvent]) {
    let now = Instant::now();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    for e in events.iter().filter(|e| e.kind == pb::watch_event::Kind::Granted as i32) {
        seen.insert(e.key.clone(), now);
    }
}
