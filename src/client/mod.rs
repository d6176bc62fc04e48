//! The Rust client of shardlock.
//!
//! [`Client`] caches the cluster's topology (groups, nodes, leaders), sends
//! each request straight to its group's leader, corrects itself on
//! `NotLeader`, and retries transient failures (`row(code).retryable`,
//! transport errors) for up to [`RETRY_FOR`], refreshing the topology from
//! any reachable node that is still in the cluster (a removed node's view
//! is used only when no member answers, and the nodes it names are asked). An acquire always carries a key — the caller's or one
//! the client draws before the first attempt — so a retried acquire can
//! never take a second grant. [`LockGuard`] keeps a lease alive;
//! [`Client::watch`] streams changes and resumes across nodes;
//! [`Client::campaign`] wins an election and keeps the [`Leadership`];
//! [`Client::observe`] streams who leads.
//!
//! Every failure is an [`ApiError`] with the server's code: match on
//! `ErrorCode`, never on message text.
//!
//! ```no_run
//! use shardlock::client::{AcquireOptions, Client};
//!
//! # async fn example() -> Result<(), shardlock::error::ApiError> {
//! let client = Client::connect_any(&["127.0.0.1:7001", "127.0.0.1:7002"]).await?;
//! // Wait up to 5 s for the lock; the guard refreshes its 10 s lease.
//! let opts = AcquireOptions { ttl_ms: Some(10_000), wait_ms: 5_000, ..Default::default() };
//! let guard = client.lock("orders/42", opts).await?;
//! println!("holding with fencing token {}", guard.fencing_token());
//! tokio::select! {
//!     _ = async { /* do the work, passing guard.fencing_token() along */ } => {}
//!     reason = guard.lost() => eprintln!("lost the lock: {reason}"),
//! }
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

mod election;
mod guard;
mod options;
mod reopen;
mod rpc;
mod session;
mod topology;
mod watch;

pub use election::{CampaignOptions, Leadership, Observation};
pub use guard::LockGuard;
pub use options::{AcquireOptions, ClientOptions};
pub use rpc::{Client, RETRY_FOR};
pub use session::Session;
pub use topology::Topology;
pub use watch::{WatchItem, WatchOptions, WatchTarget};
