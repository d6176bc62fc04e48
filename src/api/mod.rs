//! Thin adapters from the wire to the lock service, and the client port.
//!
//! - [`grpc`]: the `Lock` and `Admin` gRPC services of `proto/shardlock/v1`;
//! - [`ldlm`]: the ldlm v1 service (`proto/ldlm`), for existing ldlm clients;
//! - [`rest`]: JSON over HTTP, the same calls as gRPC;
//! - [`ldlm_rest`]: ldlm's REST API (cookie sessions), for ldlm's HTTP clients.
//!
//! gRPC and HTTP share the client port: tonic's routes become an axum
//! router. Connections are accepted here, not by `axum::serve`, so that
//! (1) every request carries the [`Conn`] it arrived on — a session can end
//! when its connection drops — and (2) HTTP/2 limits are set explicitly
//! (`max_concurrent_streams`, keepalive, and `header_read_timeout_ms`, which
//! also bounds the TLS handshake and the first bytes of a connection: see
//! [`first_bytes`]); [`body_deadline`] bounds how long a request's body may
//! take (`body_read_timeout_ms`).

pub mod auth;
pub mod body_deadline;
pub mod first_bytes;
pub mod grpc;
pub mod ldlm;
pub mod ldlm_rest;
pub mod malformed;
pub mod observe;
pub mod rest;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt;

use self::first_bytes::FirstBytes;
use crate::proto::v1::admin_server::AdminServer;
use crate::proto::v1::lock_server::LockServer;
use crate::service::ops::session;
use crate::service::LockService;

/// The client connection a request arrived on (a request extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn(pub u64);

fn router(service: Arc<LockService>) -> axum::Router {
    let max = service.config().max_message_bytes;
    let ldlm_api = Arc::new(ldlm::LdlmApi::new(service.clone()));
    let ldlm_http = ldlm_rest::router(ldlm_api.clone()).layer(axum::extract::DefaultBodyLimit::max(max));
    let ldlm = crate::proto::ldlm::ldlm_server::LdlmServer::from_arc(ldlm_api)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let token = service.config().auth.token.clone().map(Arc::new);
    let body_timeout = Duration::from_millis(service.config().body_read_timeout_ms);
    let rest = rest::router(service.clone());
    let api = grpc::GrpcApi::new(service);
    let lock = LockServer::new(api.clone()).max_decoding_message_size(max).max_encoding_message_size(max);
    let admin = AdminServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max);
    tonic::service::Routes::new(lock)
        .add_service(admin)
        .add_service(ldlm)
        .into_axum_router()
        .layer(axum::middleware::from_fn(malformed::typed_grpc))
        .merge(rest)
        .merge(ldlm_http)
        .fallback(malformed::unknown_route)
        .method_not_allowed_fallback(malformed::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(body_timeout, body_deadline::limit))
        .layer(axum::middleware::from_fn_with_state(token, auth::require))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(axum::middleware::from_fn(malformed::header_limits))
}

/// Serves the client API on `listener` until `shutdown` resolves.
pub async fn serve_client(
    listener: TcpListener,
    service: Arc<LockService>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let app = router(service.clone());
    let header_timeout = Duration::from_millis(service.config().header_read_timeout_ms);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(4 * malformed::MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(service.config().max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    let next = AtomicU64::new(1);
    let max_connections = service.config().max_connections;
    let mut connections = tokio::task::JoinSet::new();
    let mut refusals = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a client connection failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}
        while refusals.try_join_next().is_some() {}
        if connections.len() >= max_connections {
            // Answered, briefly and boundedly; beyond that many, just closed.
            if acceptor.is_none() && refusals.len() < MAX_REFUSALS {
                refusals.spawn(refuse(stream, builder.clone(), max_connections, header_timeout));
            }
            continue;
        }
        let conn = Conn(next.fetch_add(1, Ordering::Relaxed));
        let first_bytes_by = tokio::time::Instant::now() + header_timeout;
        let (app, builder, service, acceptor) = (app.clone(), builder.clone(), service.clone(), acceptor.clone());
        connections.spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn);
                app.clone().oneshot(req)
            });
            let served = match acceptor {
                None => builder.serve_connection(TokioIo::new(FirstBytes::new(stream, first_bytes_by)), svc).await,
                Some(acceptor) => match tokio::time::timeout_at(first_bytes_by, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        builder.serve_connection(TokioIo::new(FirstBytes::new(tls, first_bytes_by)), svc).await
                    }
                    Ok(Err(err)) => Err(err.into()),
                    Err(_) => Err("tls handshake timed out".into()),
                },
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, "client connection ended with an error");
            }
            session::connection_closed(&service, conn.0);
        });
    }
    refusals.shutdown().await;
    connections.shutdown().await;
}

/// Connections over `max_connections` answered at once, at most.
const MAX_REFUSALS: usize = 64;

/// Serves a connection over `max_connections`: every request on it gets
/// `UNAVAILABLE` (gRPC) or `503` (HTTP) saying so, for at most `within`.
/// Plain TCP only: a TLS connection is closed without an answer.
async fn refuse(stream: tokio::net::TcpStream, builder: auto::Builder<TokioExecutor>, max: usize, within: Duration) {
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
        let msg =
            format!("this node has max_connections ({max}) client connections open: retry later or use another node");
        let err = crate::error::ApiError::new(crate::error::ErrorCode::Unavailable, msg);
        Ok::<_, std::convert::Infallible>(malformed::answer(req.headers(), err))
    });
    let _ = tokio::time::timeout(within, builder.serve_connection(TokioIo::new(stream), svc)).await;
}
