//! Generated gRPC types and services of `proto/shardlock/v1`.
//!
//! Nothing here is written by hand; the build script regenerates it when a
//! `.proto` file changes.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("shardlock.v1");
}

/// Internal node-to-node protocol (Raft transport and forwarding).
#[allow(clippy::all, missing_docs)]
pub mod peer {
    tonic::include_proto!("shardlock.peer.v1");
}

/// The ldlm v1 protocol, served for compatibility with ldlm clients.
#[allow(clippy::all, missing_docs)]
pub mod ldlm {
    tonic::include_proto!("ldlm");
}
