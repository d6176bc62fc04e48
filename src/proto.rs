//! Generated gRPC types and services of `proto/shardlock/v1`.
//!
//! Nothing here is written by hand; the build script regenerates it when a
//! `.proto` file changes.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("shardlock.v1");
}

/// The ldlm v1 protocol, served for compatibility with ldlm clients.
#[allow(clippy::all, missing_docs)]
pub mod ldlm {
    tonic::include_proto!("ldlm");
}

/// The subset of etcd's v3 API the load test uses to compare with etcd.
#[allow(clippy::all, missing_docs)]
pub mod etcd {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
}
