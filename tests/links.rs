//! The network between the nodes of a test cluster: one fault proxy per
//! directed link, node A dialling node B through proxy (A, B) (A's config
//! gets `raft.dial = { "B" = proxy }`).
//!
//! Invariants: cutting (A, B) silences A's connections to B both ways (its
//! requests and their answers) while B's connections to A keep flowing, so
//! one-way cuts give asymmetric partitions and cutting both gives a real
//! one; [`Links::heal`] puts every link back to passing. The proxies outlive
//! node restarts (they dial the node anew for each connection) and close
//! with the cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proxy::{Mode, Proxy};

pub struct Links {
    proxies: BTreeMap<(u64, u64), Proxy>,
}

impl Links {
    /// A proxy for every ordered pair of `peers` (id, peer_addr).
    pub async fn start(peers: &[(u64, String)]) -> Self {
        let mut proxies = BTreeMap::new();
        for (from, _) in peers {
            for (to, addr) in peers.iter().filter(|(to, _)| to != from) {
                proxies.insert((*from, *to), Proxy::start(addr.clone()).await);
            }
        }
        Self { proxies }
    }

    /// `raft.dial` of node `from`, as a TOML inline table.
    pub fn dial_of(&self, from: u64) -> String {
        let entries: Vec<String> = self
            .proxies
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|((_, to), p)| format!("\"{to}\" = \"{}\"", p.addr))
            .collect();
        format!("{{ {} }}", entries.join(", "))
    }

    fn set(&self, from: u64, to: u64, mode: Mode) {
        self.proxies.get(&(from, to)).unwrap_or_else(|| panic!("no link {from} -> {to}")).set(mode);
    }

    /// Cuts what `from` sends to `to` (and the answers to it) only.
    pub fn cut(&self, from: u64, to: u64) {
        self.set(from, to, Mode::Blackhole);
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub fn split(&self, side: &[u64]) {
        for (from, to) in self.proxies.keys() {
            if side.contains(from) != side.contains(to) {
                self.set(*from, *to, Mode::Blackhole);
            }
        }
    }

    /// Delays every link by `base` plus up to `jitter` per chunk, and
    /// "loses" `loss_per_mille` of the chunks (a retransmission timeout more).
    pub fn delay_all(&self, base: Duration, jitter: Duration, loss_per_mille: u32) {
        for proxy in self.proxies.values() {
            proxy.set(Mode::Delay { base, jitter, loss_per_mille });
        }
    }

    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.set(Mode::Pass);
        }
    }
}
