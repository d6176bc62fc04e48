//! One request model for every surface, after mini-redis's `src/cmd/`.
//!
//! gRPC, REST and ldlm decode their wire form into these types and encode
//! the answers they produce; defaults and validation against `[limits]`
//! happen here, once:
//! - [`acquire`]: an acquire as asked, and its defaults;
//! - [`session`]: a session's keepalive TTL;
//! - [`status`]: a node's view of the cluster, for `Admin.Status` and
//!   `GET /v1/admin/status`.
//!
//! Invariant: a surface never fills in a default nor checks a limit itself.

pub mod acquire;
pub mod session;
pub mod status;

pub use acquire::Acquire;
pub use session::session_ttl;
pub use status::{GroupRow, NodeStatus};
