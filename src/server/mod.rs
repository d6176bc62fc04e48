//! The server: a node's start-up and shutdown, and the lock service that
//! gRPC, REST and ldlm share.
//!
//! - [`node`]: start-up, shutdown, background loops;
//! - [`ops`]: one request model for every surface (defaults, validation);
//! - [`service`]: the lock service (validation, sessions, waiting);
//! - [`proposer`]: the write path: batching, forwarding, retrying;
//! - [`forward`]: one-hop forwarding to group leaders;
//! - [`peers`]: the peer port's handler (Raft messages, forwarded work);
//! - [`read`]: linearizable read queries and answers;
//! - [`waits`]: blocking acquires waiting on this node;
//! - [`wait_guard`]: one blocking acquire's wait, cancelled when abandoned;
//! - [`sessions`]: grants that live as long as a client session;
//! - [`keeper`]: leader-side deadlines (expiry, wait timeout, idle GC);
//! - [`leases`]: the keeper's compact record of held leases;
//! - [`balancer`]: moves leaders back to their preferred nodes;
//! - [`reconciler`]: moves each group's voters to its placement;
//! - [`effects`]: performs the effects of each apply.

pub mod balancer;
pub mod effects;
pub mod forward;
pub mod gauges;
pub mod keeper;
pub mod leases;
pub mod node;
pub mod ops;
pub mod peers;
pub mod proposer;
pub mod read;
pub mod reconciler;
pub mod service;
pub mod sessions;
pub mod wait_guard;
pub mod waits;

pub use node::{DrainReport, Node, NodeError};
pub use service::{AcquireParams, LockService, Meta};
