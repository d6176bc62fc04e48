//! shardlock: a sharded multi-Raft lock service with counting semaphores.
//!
//! The public API is what a program embedding shardlock or talking to it
//! needs: [`client`] (the Rust client), [`node`] (a node to start and
//! stop), [`config`], [`error`] (the one code table), [`lock`] (the pure
//! state machine, for its types and benchmarks), [`routing`] (which group
//! a lock name belongs to), [`proto`] (the gRPC types), [`metrics`] (their
//! names) and [`tls`]; tests reach a little further through [`testing`].
//! Everything else is the server's inside, laid out by layer (each
//! importing only those below it; docs/design.md draws it):
//! `node` → `api` → `service` → `upkeep` → `raft` → `storage`, `peer`,
//! `codec` → `lock`, `routing`.

pub mod client;
pub mod config;
pub mod error;
pub mod lock;
pub mod metrics;
pub mod node;
pub mod proto;
pub mod routing;
pub mod testing;
pub mod tls;

pub(crate) mod api;
pub(crate) mod codec;
pub(crate) mod faults;
pub(crate) mod peer;
pub(crate) mod raft;
pub(crate) mod rounds;
pub(crate) mod service;
pub(crate) mod storage;
pub(crate) mod upkeep;
