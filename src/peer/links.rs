//! This node's connections to its peers: one framed connection per peer,
//! dialled on first use and again after it dies, carrying every group's Raft
//! messages, pings and forwarded requests.
//!
//! Invariants: at most one connection and one dial per peer at a time
//! (callers that find a dial under way wait for it; nobody holds a lock
//! while they wait); a dial that failed makes calls to that peer fail fast
//! for `REDIAL_AFTER`, so a dead peer costs one connect attempt per window,
//! not one per message; a dial override (`raft.dial`) for a peer always
//! wins over the address membership lists; a peer's new address drops the
//! connection to the old one; a dial (TCP connect and TLS handshake) takes
//! at most `DIAL_TIMEOUT`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::conn::{CallError, Conn};
use super::frame::{Frame, Method};

/// Longest a TCP connect plus TLS handshake may take.
const DIAL_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed dial, calls to the peer fail at once for this long.
const REDIAL_AFTER: Duration = Duration::from_millis(100);

type Dial = Shared<BoxFuture<'static, Result<Arc<Conn>, String>>>;

enum Slot {
    Up(Arc<Conn>),
    Dialing(Dial),
    Failed { at: Instant, why: String },
}

/// TLS for dialled connections: the connector and this node's identity.
pub type Connector = tokio_rustls::TlsConnector;

struct Inner {
    me: u64,
    /// The address dialled for each peer: its override, else its `peer_addr`.
    addrs: Mutex<HashMap<u64, String>>,
    /// `raft.dial`: fixed for the life of the node.
    overrides: BTreeMap<u64, String>,
    slots: Mutex<HashMap<u64, Slot>>,
    tls: Option<Connector>,
    max_frame: usize,
    /// `shardlock_peer_messages_total` by method, registered once.
    sent: Vec<metrics::Counter>,
}

/// The peer connections of one node. Cheap to clone.
#[derive(Clone)]
pub struct Links {
    inner: Arc<Inner>,
}

impl Links {
    pub fn new(me: u64, overrides: BTreeMap<u64, String>, tls: Option<Connector>, max_frame: usize) -> Self {
        let sent = Method::ALL
            .iter()
            .map(|m| metrics::counter!(crate::metrics::PEER_MESSAGES, "method" => m.label()))
            .collect();
        let inner = Inner { me, addrs: Mutex::default(), overrides, slots: Mutex::default(), tls, max_frame, sent };
        Self { inner: Arc::new(inner) }
    }

    fn addrs(&self) -> MutexGuard<'_, HashMap<u64, String>> {
        self.inner.addrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        self.inner.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a peer's address (from a membership entry); a dial override
    /// for the peer takes its place. A changed address drops the connection.
    pub fn learn(&self, id: u64, peer_addr: &str) {
        let addr = self.inner.overrides.get(&id).map_or(peer_addr, String::as_str);
        let changed = self.addrs().insert(id, addr.to_owned()).is_some_and(|old| old != addr);
        if changed {
            if let Some(Slot::Up(conn)) = self.slots().remove(&id) {
                conn.close("the peer moved to another address");
            }
        }
    }

    /// The address this node dials for `id`, if it knows the peer.
    pub fn dial_addr(&self, id: u64) -> Option<String> {
        self.addrs().get(&id).cloned()
    }

    /// Every peer this node knows an address for (not itself).
    pub fn peers(&self) -> Vec<u64> {
        self.addrs().keys().copied().filter(|id| *id != self.inner.me).collect()
    }

    /// One call to `target`, answered within `ttl` (the dial included).
    pub async fn call(
        &self,
        target: u64,
        method: Method,
        group: u32,
        body: &[u8],
        ttl: Duration,
    ) -> Result<Frame, CallError> {
        self.inner.sent[method as usize - 1].increment(1);
        let conn = match tokio::time::timeout(ttl, self.conn(target)).await {
            Err(_) => return Err(CallError::Timeout),
            Ok(conn) => conn?,
        };
        conn.call(method, group, body, ttl).await
    }

    /// The live connection to `target`, dialling it if need be.
    async fn conn(&self, target: u64) -> Result<Arc<Conn>, CallError> {
        let dial = {
            let mut slots = self.slots();
            match slots.get(&target) {
                Some(Slot::Up(conn)) if !conn.is_closed() => return Ok(conn.clone()),
                Some(Slot::Dialing(dial)) => dial.clone(),
                Some(Slot::Failed { at, why }) if at.elapsed() < REDIAL_AFTER => {
                    return Err(CallError::Unreachable(why.clone()));
                }
                _ => {
                    let dial = self.dial(target).boxed().shared();
                    slots.insert(target, Slot::Dialing(dial.clone()));
                    dial
                }
            }
        };
        dial.await.map_err(CallError::Unreachable)
    }

    /// Dials `target` once and records how it went in its slot.
    fn dial(&self, target: u64) -> impl std::future::Future<Output = Result<Arc<Conn>, String>> + Send + 'static {
        let links = self.clone();
        async move {
            let dialled = match links.dial_addr(target) {
                None => Err(format!("node {target} is unknown")),
                Some(addr) => match tokio::time::timeout(DIAL_TIMEOUT, links.connect(&addr)).await {
                    Err(_) => Err(format!("connecting to node {target} at {addr} timed out")),
                    Ok(result) => result.map_err(|e| format!("cannot connect to node {target} at {addr}: {e}")),
                },
            };
            let slot = match &dialled {
                Ok(conn) => Slot::Up(conn.clone()),
                Err(why) => Slot::Failed { at: Instant::now(), why: why.clone() },
            };
            links.slots().insert(target, slot);
            dialled
        }
    }

    async fn connect(&self, addr: &str) -> std::io::Result<Arc<Conn>> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let max = self.inner.max_frame;
        match &self.inner.tls {
            None => {
                let (read, write) = stream.into_split();
                Ok(Conn::start(read, write, max, None))
            }
            Some(connector) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tls = connector.connect(name, stream).await?;
                let (read, write) = tokio::io::split(tls);
                Ok(Conn::start(read, write, max, None))
            }
        }
    }

    /// Closes every connection (the node is stopping).
    pub fn close_all(&self) {
        let slots: Vec<Slot> = self.slots().drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Slot::Up(conn) = slot {
                conn.close("the node is stopping");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_overrides_win_over_membership() {
        let links = Links::new(1, [(2, "proxy:9002".to_string())].into(), None, 4096);
        links.learn(2, "node2:7101");
        links.learn(3, "node3:7101");
        assert_eq!(links.dial_addr(2).as_deref(), Some("proxy:9002"));
        links.learn(2, "elsewhere:7101");
        assert_eq!(links.dial_addr(2).as_deref(), Some("proxy:9002"));
        links.learn(3, "moved:7101");
        assert_eq!(links.dial_addr(3).as_deref(), Some("moved:7101"));
        let mut peers = links.peers();
        peers.sort_unstable();
        assert_eq!(peers, vec![2, 3]);
    }

    #[tokio::test]
    async fn an_unreachable_peer_fails_fast_then_is_dialled_again() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let links = Links::new(1, BTreeMap::new(), None, 4096);
        links.learn(2, &format!("127.0.0.1:{port}"));
        let first = links.call(2, Method::Ping, 0, b"", Duration::from_secs(2)).await;
        assert!(matches!(first, Err(CallError::Unreachable(_))), "{first:?}");
        let started = Instant::now();
        let again = links.call(2, Method::Ping, 0, b"", Duration::from_secs(2)).await;
        assert!(matches!(again, Err(CallError::Unreachable(_))));
        assert!(started.elapsed() < REDIAL_AFTER, "a recent failure answers without dialling");
        let unknown = links.call(9, Method::Ping, 0, b"", Duration::from_secs(2)).await;
        assert!(matches!(unknown, Err(CallError::Unreachable(why)) if why.contains("unknown")));
    }
}
