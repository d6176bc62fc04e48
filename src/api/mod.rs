//! Thin adapters from the wire to the lock service.
//!
//! - [`grpc`]: the `Lock` and `Admin` gRPC services of `proto/shardlock/v1`.
//!
//! gRPC and HTTP share the client port: tonic's routes become an axum
//! router, so one listener serves both.

pub mod grpc;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::proto::v1::admin_server::AdminServer;
use crate::proto::v1::lock_server::LockServer;
use crate::server::LockService;

/// Serves the client API on `listener` until `shutdown` resolves.
pub async fn serve_client(
    listener: TcpListener,
    service: Arc<LockService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max = service.config().max_message_bytes;
    let api = grpc::GrpcApi::new(service);
    let lock = LockServer::new(api.clone()).max_decoding_message_size(max).max_encoding_message_size(max);
    let admin = AdminServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
    let app = tonic::service::Routes::new(lock)
        .add_service(admin)
        .into_axum_router()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %err, "client server failed");
    }
}
