//! The gRPC edge: every gRPC request's per-call work, done once, in one
//! place, then tonic's generated service — no web framework's router or
//! middleware chain on the way (REST keeps axum).
//!
//! In order, for a request whose content type is `application/grpc…`:
//! the request id, span and per-call metrics ([`Observed`]); the header
//! limits; the shared token (`authorization`); the body deadline (all but
//! the Session stream); the service, picked by the path's prefix
//! (`Lock`, `Admin`, `Election`, ldlm's `LDLM`; any other answers
//! `UNIMPLEMENTED`);
//! then tonic's own bare answers to undecodable messages are given their
//! typed code ([`malformed::typed_grpc`]).
//!
//! Invariant: every refusal made here is a gRPC status built by
//! `ApiError::to_status`, so it carries `shardlock-code` like a handler's.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use tower::ServiceExt;
use tracing::Instrument;

use super::body_deadline::{self, Deadline};
use super::grpc::GrpcApi;
use super::grpc_election::ElectionApi;
use super::ldlm::LdlmApi;
use super::observe::Observed;
use super::{auth, malformed};
use crate::config::Secret;
use crate::error::{ApiError, ErrorCode};
use crate::proto::ldlm::ldlm_server::LdlmServer;
use crate::proto::v1::admin_server::AdminServer;
use crate::proto::v1::election_server::ElectionServer;
use crate::proto::v1::lock_server::LockServer;
use crate::service::LockService;

/// The gRPC services of the client port, and what every call checks.
#[derive(Clone)]
pub struct GrpcEdge {
    lock: LockServer<GrpcApi>,
    admin: AdminServer<GrpcApi>,
    election: ElectionServer<ElectionApi>,
    ldlm: LdlmServer<LdlmApi>,
    token: Option<Arc<Secret>>,
    body_timeout: Duration,
}

impl GrpcEdge {
    pub fn new(service: Arc<LockService>, ldlm: Arc<LdlmApi>) -> Self {
        let config = service.config();
        let max = config.max_message_bytes;
        let token = config.auth.token.clone().map(Arc::new);
        let body_timeout = Duration::from_millis(config.body_read_timeout_ms);
        let election = ElectionApi::new(service.clone());
        let api = GrpcApi::new(service);
        Self {
            election: ElectionServer::new(election).max_decoding_message_size(max).max_encoding_message_size(max),
            lock: LockServer::new(api.clone()).max_decoding_message_size(max).max_encoding_message_size(max),
            admin: AdminServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max),
            ldlm: LdlmServer::from_arc(ldlm).max_decoding_message_size(max).max_encoding_message_size(max),
            token,
            body_timeout,
        }
    }

    /// Serves one gRPC request.
    pub async fn call(self, req: Request<Incoming>) -> Response<Body> {
        let observed = Observed::start(req.uri().path(), req.headers());
        let mut resp = match &observed {
            Some(o) => self.serve(req).instrument(o.span()).await,
            None => self.serve(req).await,
        };
        if let Some(o) = observed {
            o.finish(&mut resp);
        }
        resp
    }

    async fn serve(self, req: Request<Incoming>) -> Response<Body> {
        if let Some(err) = malformed::over_header_limits(req.headers()) {
            return refusal(err);
        }
        if let Some(token) = &self.token {
            let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            if !auth::authorized(header, token) {
                let why = if header.is_some() {
                    "invalid credentials"
                } else {
                    "missing credentials: send authorization: Bearer <token>"
                };
                return refusal(ApiError::new(ErrorCode::Unauthenticated, why));
            }
        }
        let path = req.uri().path();
        let req = if body_deadline::bounded(path) {
            req.map(|body| Body::new(Deadline::new(body, self.body_timeout)))
        } else {
            req.map(Body::new)
        };
        let resp = match service_of(req.uri().path()) {
            Some(Service::Lock) => self.lock.oneshot(req).await,
            Some(Service::Admin) => self.admin.oneshot(req).await,
            Some(Service::Election) => self.election.oneshot(req).await,
            Some(Service::Ldlm) => self.ldlm.oneshot(req).await,
            None => {
                let msg = format!("no grpc method {}: check the service and method name", req.uri().path());
                return tonic::Status::unimplemented(msg).into_http::<Body>();
            }
        };
        let resp = match resp {
            Ok(resp) => resp.map(Body::new),
            Err(never) => match never {},
        };
        match malformed::typed_grpc(resp.headers()) {
            Some(err) => refusal(err),
            None => resp,
        }
    }
}

enum Service {
    Lock,
    Admin,
    Election,
    Ldlm,
}

fn service_of(path: &str) -> Option<Service> {
    let (service, _method) = path.strip_prefix('/')?.split_once('/')?;
    match service {
        "shardlock.v1.Lock" => Some(Service::Lock),
        "shardlock.v1.Admin" => Some(Service::Admin),
        "shardlock.v1.Election" => Some(Service::Election),
        "ldlm.LDLM" => Some(Service::Ldlm),
        _ => None,
    }
}

fn refusal(err: ApiError) -> Response<Body> {
    err.to_status().into_http::<Body>()
}

/// Whether a request is gRPC (to the edge) rather than REST (to axum).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_by_path() {
        assert!(matches!(service_of("/shardlock.v1.Lock/Acquire"), Some(Service::Lock)));
        assert!(matches!(service_of("/shardlock.v1.Admin/Status"), Some(Service::Admin)));
        assert!(matches!(service_of("/ldlm.LDLM/Lock"), Some(Service::Ldlm)));
        assert!(service_of("/shardlock.v1.Nope/X").is_none());
        assert!(service_of("/v1/lock/acquire").is_none());
        assert!(service_of("").is_none());
    }
}
