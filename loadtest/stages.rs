//! The write path's per-stage histograms, scraped from every node's
//! `/metrics` before and after a run (`shardlock_write_stage_seconds`).
//!
//! Prometheus histograms are cumulative buckets, so a run's figures are the
//! difference of two scrapes summed over the nodes; percentiles are read
//! off the buckets (the upper bound of the bucket that holds them).

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const METRIC: &str = "shardlock_write_stage_seconds";
const ORDER: [&str; 7] = ["queue", "append", "fsync", "replicate", "commit", "apply", "reply"];

/// One stage's cumulative figures: bucket upper bound → count, sum, count.
#[derive(Clone, Default)]
struct Hist {
    buckets: BTreeMap<u64, f64>,
    sum: f64,
    count: f64,
}

/// Every stage of every scraped node, summed, and the peer messages sent.
#[derive(Clone, Default)]
pub struct Scrape(BTreeMap<String, Hist>, BTreeMap<String, f64>);

const PEER_MESSAGES: &str = "shardlock_peer_messages_total";
const WATCH_DELAY: &str = "shardlock_watch_delay_seconds";

/// One histogram between two scrapes: its count, mean (µs) and a function
/// giving the upper bound (µs) of the bucket holding a quantile.
fn since(after: &Hist, prior: &Hist) -> (f64, f64, impl Fn(f64) -> String) {
    let count = after.count - prior.count;
    let mean = if count > 0.0 { (after.sum - prior.sum) / count * 1e6 } else { 0.0 };
    let deltas: Vec<(u64, f64)> =
        after.buckets.iter().map(|(b, n)| (*b, n - prior.buckets.get(b).copied().unwrap_or(0.0))).collect();
    let q = move |q: f64| {
        let want = q * count;
        match deltas.iter().find(|(_, n)| *n >= want).map_or(u64::MAX, |(b, _)| *b) {
            u64::MAX => "inf".to_owned(),
            b => format!("{:.0}", b as f64 / 1e3),
        }
    };
    (count, mean, q)
}

async fn fetch(addr: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(body)
}

/// Bucket bounds in nanoseconds (an exact key); +Inf is `u64::MAX`.
fn bound(le: &str) -> u64 {
    if le == "+Inf" {
        u64::MAX
    } else {
        (le.parse::<f64>().unwrap_or(f64::MAX) * 1e9).round() as u64
    }
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

impl Scrape {
    /// Scrapes every node in `addrs` (unreachable nodes count as empty).
    pub async fn take(addrs: &[String]) -> Self {
        let mut all = Scrape::default();
        for addr in addrs {
            if let Some(body) = fetch(addr).await {
                all.add(&body);
            }
        }
        all
    }

    fn add(&mut self, body: &str) {
        for line in body.lines().filter(|l| l.starts_with(PEER_MESSAGES)) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let labels = series.split_once('{').map_or("", |(_, l)| l);
            if let (Some(method), Ok(value)) = (label(labels, "method"), value.parse::<f64>()) {
                *self.1.entry(method.to_owned()).or_default() += value;
            }
        }
        for line in body.lines() {
            let (metric, stage) = if line.starts_with(METRIC) {
                (METRIC, None)
            } else if line.starts_with(WATCH_DELAY) {
                (WATCH_DELAY, Some(WATCH_DELAY))
            } else {
                continue;
            };
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let labels = series.split_once('{').map_or("", |(_, l)| l);
            let Some(stage) = stage.or_else(|| label(labels, "stage")) else { continue };
            let h = self.0.entry(stage.to_owned()).or_default();
            if series.starts_with(&format!("{metric}_bucket")) {
                let le = label(labels, "le").unwrap_or("+Inf");
                *h.buckets.entry(bound(le)).or_default() += value;
            } else if series.starts_with(&format!("{metric}_sum")) {
                h.sum += value;
            } else if series.starts_with(&format!("{metric}_count")) {
                h.count += value;
            }
        }
    }

    /// The servers' apply-to-send delay of watch events between `before`
    /// and `self`: count, p50 and p99 (bucket upper bounds), in µs.
    pub fn watch_delay_since(&self, before: &Scrape) -> String {
        let empty = Hist::default();
        let after = self.0.get(WATCH_DELAY).unwrap_or(&empty);
        let (count, _, q) = since(after, before.0.get(WATCH_DELAY).unwrap_or(&empty));
        format!("server apply→send µs p50 ≤ {} p99 ≤ {} ({count:.0} sends)", q(0.5), q(0.99))
    }

    /// Peer messages sent between `before` and `self`, per cycle, by method.
    pub fn messages_since(&self, before: &Scrape, cycles: f64) -> String {
        let per: Vec<String> = self
            .1
            .iter()
            .map(|(m, n)| (m, n - before.1.get(m).copied().unwrap_or(0.0)))
            .filter(|(_, n)| *n > 0.0)
            .map(|(m, n)| format!("{m} {:.2}", n / cycles.max(1.0)))
            .collect();
        format!("peer messages per cycle (all nodes): {}", per.join(", "))
    }

    /// A Markdown table of what happened between `before` and `self`.
    pub fn table_since(&self, before: &Scrape) -> String {
        let mut out = String::from("| stage | count | mean µs | p50 ≤ µs | p99 ≤ µs |\n|---|---|---|---|---|\n");
        for stage in ORDER {
            let (Some(after), empty) = (self.0.get(stage), Hist::default()) else { continue };
            let (count, mean, q) = since(after, before.0.get(stage).unwrap_or(&empty));
            if count <= 0.0 {
                out.push_str(&format!("| {stage} | 0 | | | |\n"));
                continue;
            }
            out.push_str(&format!("| {stage} | {count:.0} | {mean:.0} | {} | {} |\n", q(0.5), q(0.99)));
        }
        out
    }
}
