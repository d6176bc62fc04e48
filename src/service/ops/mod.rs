//! One type per call, after mini-redis's `src/cmd/`: gRPC, REST and ldlm
//! decode their wire form into these types, run them against the
//! [`LockService`](super::LockService), and encode the answer they return.
//!
//! Each file holds one call: its request type, whose optional fields get
//! their defaults there and whose limits (`[limits]`) are checked there,
//! once; its one conversion into a lock command; and its answer type,
//! which carries what every surface shows (no surface saves a field of the
//! request to answer with). Adding a call is one file here, one apply rule
//! in `src/lock` and one line per surface (docs/design.md).
//!
//! Invariant: a surface never fills in a default nor checks a limit itself.

pub mod acquire;
pub mod describe;
pub mod downgrade;
pub mod election;
pub mod force_release;
pub mod list;
pub mod membership;
pub mod most_contended;
pub mod refresh;
pub mod release;
pub mod session;
pub mod set_value;
pub mod status;
pub mod validate_fence;
pub mod watch;
