//! A TCP fault proxy for one directed link between two nodes: node A dials
//! node B through it (A's `raft.dial` names the proxy for B), so it carries
//! A's connections to B and the answers on them. These machines have no
//! `tc netem`; this is how tests cut, delay and heal links on loopback.
//!
//! Invariants: it listens on 127.0.0.1 only; the bytes of each direction
//! keep their order; in [`Mode::Blackhole`] it still accepts connections,
//! and no connection, old or new, moves a byte in either direction until
//! the mode changes — nothing is closed or reset, so the dialler sees
//! silence and its own timeouts fire, as in a real partition; in
//! [`Mode::Delay`] each chunk read is forwarded `base + random(0..jitter)`
//! later (in order: never before the chunk ahead of it), and a "lost" chunk
//! one retransmission timeout later still (TCP never drops bytes, it resends
//! them). Dropping the proxy closes its listener and every connection it
//! carries.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// What a lost segment costs on TCP: Linux's minimum retransmission timeout.
const RTO: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Pass,
    /// Forward nothing, close nothing: a partition.
    Blackhole,
    /// Forward each chunk after `base` plus a uniform random part of
    /// `jitter`; `loss_per_mille` of the chunks are "lost" and arrive one
    /// retransmission timeout (`RTO`) later, as a lost TCP segment does
    /// (the bytes behind a late chunk wait for it: TCP keeps order).
    Delay { base: Duration, jitter: Duration, loss_per_mille: u32 },
}

pub struct Proxy {
    /// Where the dialling node connects.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// The accept loop; it owns every connection task, so aborting it ends them.
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy in [`Mode::Pass`] to `target` (`host:port`), which
    /// need not be listening yet: each connection dials it when it opens.
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a proxy port on 127.0.0.1");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, watched) = watch::channel(Mode::Pass);
        let task = tokio::spawn(accept(listener, target, watched));
        Self { addr, mode, task }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: String, mode: watch::Receiver<Mode>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((inbound, _)) = accepted {
                    connections.spawn(carry(inbound, target.clone(), mode.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One connection: held while the link is cut, then joined to the target
/// (if the target is down, dropping `inbound` closes it, like a refusal).
async fn carry(inbound: TcpStream, target: String, mut mode: watch::Receiver<Mode>) {
    if hold_while_cut(&mut mode).await.is_err() {
        return;
    }
    let Ok(outbound) = TcpStream::connect(&target).await else { return };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let (from_dialler, to_dialler) = inbound.into_split();
    let (from_target, to_target) = outbound.into_split();
    tokio::join!(pump(from_dialler, to_target, mode.clone()), pump(from_target, to_dialler, mode));
}

/// Copies one direction: a reader stamps each chunk with the instant it is
/// due (now plus the link's delay, never before the chunk ahead of it), a
/// writer sends it then. Delays thus overlap like a slow wire's instead of
/// adding up. At the end of its input it closes the other side's writing half.
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, mode: watch::Receiver<Mode>) {
    let (tx, rx) = mpsc::channel(1024);
    tokio::join!(read_side(from, tx, mode.clone()), write_side(rx, to, mode));
}

async fn read_side(mut from: OwnedReadHalf, tx: mpsc::Sender<(Instant, Vec<u8>)>, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_due = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Ok(current) = hold_while_cut(&mut mode).await else { break };
        let delay = match current {
            Mode::Delay { base, jitter, loss_per_mille } => {
                let lost = rand::random::<u32>() % 1000 < loss_per_mille;
                base + jitter.mul_f64(rand::random::<f64>()) + if lost { RTO } else { Duration::ZERO }
            }
            _ => Duration::ZERO,
        };
        last_due = (Instant::now() + delay).max(last_due);
        if tx.send((last_due, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
}

async fn write_side(
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if hold_while_cut(&mut mode).await.is_err() || to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Returns the link's mode once it is not cut (at once if it is not). An
/// error means the proxy is gone.
async fn hold_while_cut(mode: &mut watch::Receiver<Mode>) -> Result<Mode, watch::error::RecvError> {
    loop {
        let current = *mode.borrow_and_update();
        if current != Mode::Blackhole {
            return Ok(current);
        }
        mode.changed().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        (addr, task)
    }

    async fn round_trip(s: &mut TcpStream, within: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(within, s.read_exact(&mut buf)).await.ok()?.ok()?;
        Some(started.elapsed())
    }

    #[tokio::test]
    async fn passes_holds_while_cut_and_delays() {
        let (target, server) = echo_server().await;
        let proxy = Proxy::start(target.to_string()).await;
        let mut old = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut old, Duration::from_secs(5)).await.is_some());

        // Cut: the open connection goes silent, a new one is accepted but silent too.
        proxy.set(Mode::Blackhole);
        assert_eq!(round_trip(&mut old, Duration::from_millis(300)).await, None);
        let mut new = TcpStream::connect(proxy.addr).await.expect("a cut link still accepts");
        assert_eq!(round_trip(&mut new, Duration::from_millis(300)).await, None);

        // Healed: both flow again, the held bytes first (nothing was reset).
        proxy.set(Mode::Pass);
        let mut held = [0u8; 4];
        old.read_exact(&mut held).await.unwrap();
        new.read_exact(&mut held).await.unwrap();
        assert!(round_trip(&mut new, Duration::from_secs(5)).await.is_some());

        let delay =
            Mode::Delay { base: Duration::from_millis(100), jitter: Duration::from_millis(50), loss_per_mille: 0 };
        proxy.set(delay);
        let took = round_trip(&mut new, Duration::from_secs(5)).await.expect("delayed, not lost");
        assert!(took >= Duration::from_millis(200), "two delayed chunks took only {took:?}");

        // Every chunk "lost": each arrives one retransmission timeout late, none is dropped.
        proxy.set(Mode::Delay { base: Duration::ZERO, jitter: Duration::ZERO, loss_per_mille: 1000 });
        let took = round_trip(&mut new, Duration::from_secs(5)).await.expect("resent, not dropped");
        assert!(took >= 2 * RTO, "two lost chunks took only {took:?}");
        server.abort();
    }
}
