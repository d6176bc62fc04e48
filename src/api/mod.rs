//! The surfaces: thin translators from each wire form into the request
//! path's op types (`crate::service::ops`) and back, and the client port
//! they share.
//!
//! - [`grpc`]: the `Lock` and `Admin` gRPC services of `proto/shardlock/v1`;
//!   [`grpc_watch`], its Watch stream; [`grpc_election`], the `Election`
//!   service; [`grpc_wire`], the wire forms they share;
//! - [`grpc_edge`]: what every gRPC call checks, done once, then tonic;
//! - [`rest`]: JSON over HTTP, the same calls as gRPC (axum);
//! - [`ldlm`], [`ldlm_rest`]: the ldlm v1 gRPC and REST APIs, for existing
//!   ldlm clients;
//! - [`resp`]: RESP, the Redis protocol;
//! - [`auth`], [`observe`], [`malformed`], [`body_deadline`]: the shared
//!   token, per-call metrics and request ids, typed answers to bad input,
//!   the body deadline.
//!
//! One port serves them all: a connection whose first byte is `*` (after
//! the TLS handshake when TLS is on) speaks RESP; any other speaks HTTP,
//! where a request with a gRPC content type goes to the gRPC edge and any
//! other to the REST router. Connections are accepted here, not by
//! `axum::serve`, so that (1) every request carries the [`Conn`] it arrived
//! on — a session can end when its connection drops — and (2) HTTP/2
//! limits are set explicitly (`max_concurrent_streams`, keepalive, and
//! `header_read_timeout_ms`, which also bounds the TLS handshake and the
//! first bytes of a connection: see [`first_bytes`]); [`body_deadline`]
//! bounds how long a request's body may take (`body_read_timeout_ms`).

pub mod auth;
pub mod body_deadline;
pub mod first_bytes;
pub mod grpc;
pub mod grpc_edge;
pub mod grpc_election;
pub mod grpc_watch;
pub mod grpc_wire;
pub mod ldlm;
pub mod ldlm_rest;
pub mod malformed;
pub mod observe;
pub mod resp;
pub mod rest;
pub mod rewind;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::future::Either;
use futures::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

use self::first_bytes::FirstBytes;
use self::rewind::Rewind;
use crate::service::ops::session;
use crate::service::LockService;

/// The client connection a request arrived on (a request extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn(pub u64);

/// The REST and ldlm REST routes, with their per-request layers.
fn rest_router(service: Arc<LockService>, ldlm: Arc<ldlm::LdlmApi>) -> axum::Router {
    let max = service.config().max_message_bytes;
    let ldlm_http = ldlm_rest::router(ldlm).layer(axum::extract::DefaultBodyLimit::max(max));
    let token = service.config().auth.token.clone().map(Arc::new);
    let body_timeout = Duration::from_millis(service.config().body_read_timeout_ms);
    rest::router(service)
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
    let ldlm = Arc::new(ldlm::LdlmApi::new(service.clone()));
    let grpc = grpc_edge::GrpcEdge::new(service.clone(), ldlm.clone());
    let app = rest_router(service.clone(), ldlm);
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
    let token = service.config().auth.token.clone().map(Arc::new);
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
        let (app, grpc, builder) = (app.clone(), grpc.clone(), builder.clone());
        let (service, acceptor) = (service.clone(), acceptor.clone());
        let token = token.clone();
        connections.spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn);
                if grpc_edge::is_grpc(&req) {
                    Either::Left(grpc.clone().call(req).map(Ok::<_, std::convert::Infallible>))
                } else {
                    Either::Right(app.clone().oneshot(req))
                }
            });
            let served = match acceptor {
                None => match first_byte(&stream, first_bytes_by).await {
                    Some(b'*') => Ok(resp::serve(stream, BytesMut::new(), service.clone(), conn.0, token).await),
                    _ => builder.serve_connection(TokioIo::new(FirstBytes::new(stream, first_bytes_by)), svc).await,
                },
                Some(acceptor) => match tokio::time::timeout_at(first_bytes_by, acceptor.accept(stream)).await {
                    Ok(Ok(mut tls)) => {
                        let mut first = BytesMut::with_capacity(4096);
                        let _ = tokio::time::timeout_at(first_bytes_by, tls.read_buf(&mut first)).await;
                        if first.first() == Some(&b'*') {
                            Ok(resp::serve(tls, first, service.clone(), conn.0, token).await)
                        } else {
                            let tls = FirstBytes::new(Rewind::new(first, tls), first_bytes_by);
                            builder.serve_connection(TokioIo::new(tls), svc).await
                        }
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

/// The first byte a plain TCP client sends (peeked, not read), if it
/// sends one before `by`.
async fn first_byte(stream: &tokio::net::TcpStream, by: tokio::time::Instant) -> Option<u8> {
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(by, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        _ => None,
    }
}

/// Connections over `max_connections` answered at once, at most.
const MAX_REFUSALS: usize = 64;

/// Serves a connection over `max_connections`: every request on it gets
/// `UNAVAILABLE` (gRPC) or `503` (HTTP) saying so, for at most `within`.
/// Plain TCP only: a TLS connection is closed without an answer.
async fn refuse(
    mut stream: tokio::net::TcpStream,
    builder: auto::Builder<TokioExecutor>,
    max: usize,
    within: Duration,
) {
    let by = tokio::time::Instant::now() + within;
    if first_byte(&stream, by).await == Some(b'*') {
        let msg = format!("-UNAVAILABLE this node has max_connections ({max}) client connections open: retry later or use another node\r\n");
        let _ = tokio::time::timeout(within, stream.write_all(msg.as_bytes())).await;
        return;
    }
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
        let msg =
            format!("this node has max_connections ({max}) client connections open: retry later or use another node");
        let err = crate::error::ApiError::new(crate::error::ErrorCode::Unavailable, msg);
        Ok::<_, std::convert::Infallible>(malformed::answer(req.headers(), err))
    });
    let _ = tokio::time::timeout(within, builder.serve_connection(TokioIo::new(stream), svc)).await;
}
