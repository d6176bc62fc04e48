//! The peer protocol: framed connections between nodes.
//!
//! Each node dials each peer once and keeps the connection; every group's
//! Raft messages, the node pings and the requests forwarded to group
//! leaders travel on it as frames (`frame`), batched by the writer when
//! they queue together (`conn`). There is no HTTP/2, no task or timer per
//! message, and no per-call buffer worker: one writer and one reader task
//! per connection, and a deadline sweep while calls are pending.
//!
//! - [`frame`]: the wire format of one frame;
//! - [`conn`]: one connection, its writer, reader and pending calls;
//! - [`links`]: this node's outgoing connections, dialled on demand;
//! - [`server`]: the peer port, which serves incoming connections.
//!
//! The bodies are the node's binary encoding (`crate::codec`); the
//! protocol itself knows nothing of Raft or locks.

pub mod conn;
pub mod frame;
pub mod links;
pub mod server;

pub use conn::{Answer, CallError, Handler};
pub use frame::{Kind, Method};
pub use links::Links;
