//! shardlock: a sharded multi-Raft lock service with counting semaphores.
//!
//! Layout (see DESIGN.md §8 in the steering repo, summarised in README.md):
//! - [`lock`]: the pure state machine each Raft group runs;
//! - [`routing`]: which group a lock name belongs to (server and client);
//! - [`storage`]: the node's one RocksDB, keyed by group;
//! - [`config`]: the one config struct;
//! - [`error`]: the table that maps error codes to gRPC and HTTP statuses;
//! - [`proto`]: the generated gRPC types of `proto/shardlock/v1`.

pub mod api;
pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod faults;
pub mod lock;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod proto;
pub mod raft;
pub mod rounds;
pub mod routing;
pub mod service;
pub mod storage;
pub mod tls;
pub mod upkeep;
