//! ldlm v1 compatibility: the `ldlm.LDLM` service on the client port,
//! backed by the same replicated locks.
//!
//! Mapping (decisions where ldlm and shardlock differ):
//! - every client connection is an ldlm session: whatever it locks is
//!   released when it disconnects; a lock without `lock_timeout_seconds` is
//!   kept alive by this node while the connection lives (lease TTL
//!   `default_ttl_ms` as the backstop if the node dies); a lock with a
//!   timeout expires unless renewed, as in ldlm;
//! - a `Lock` without a wait timeout waits up to `limits.max_wait_ms`;
//! - lock-level failures are answered in the response's `error` with ldlm's
//!   codes and gRPC status OK (ldlm clients retry any non-OK status);
//!   only "cluster unavailable" leaves as a gRPC status, so clients retry;
//! - `Renew` of an unknown name or key answers code 5
//!   (LockDoesNotExistOrInvalidKey), as ldlm documents;
//! - keys are shardlock keys (32 hex digits), opaque to ldlm clients.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Conn;
use crate::error::{row, ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::proto::ldlm as pb;
use crate::proto::ldlm::ldlm_server::Ldlm;
use crate::service::ops::acquire::{Acquire, InSession};
use crate::service::ops::refresh::Refresh;
use crate::service::ops::release::Release;
use crate::service::LockService;
use crate::upkeep::sessions::SessionId;

pub struct LdlmApi {
    service: Arc<LockService>,
}

impl LdlmApi {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }

    pub fn service(&self) -> &Arc<LockService> {
        &self.service
    }

    /// The ldlm session of a gRPC connection: opened on its first lock.
    fn connection_session(&self, conn: Option<Conn>) -> Result<Option<SessionId>, Status> {
        match conn {
            Some(conn) => self.service.sessions().for_connection(conn.0).map(Some).map_err(|e| e.to_status()),
            None => Ok(None),
        }
    }
}

fn error(code: pb::ErrorCode, message: impl Into<String>) -> Option<pb::Error> {
    Some(pb::Error { code: code as i32, message: message.into() })
}

/// The ldlm error for a shardlock error, or a gRPC status when the client
/// should retry (the cluster is unavailable).
fn ldlm_error(err: ApiError) -> Result<Option<pb::Error>, Status> {
    use pb::ErrorCode as L;
    let code = match err.code {
        ErrorCode::WaitTimeout => return Ok(error(L::LockWaitTimeout, "timeout waiting to acquire lock")),
        ErrorCode::SizeMismatch => return Ok(error(L::LockSizeMismatch, "lock size mismatch")),
        ErrorCode::NotFound => L::LockDoesNotExist,
        ErrorCode::NotHolder | ErrorCode::InvalidKey => L::InvalidLockKey,
        ErrorCode::InvalidSize => L::InvalidLockSize,
        code if row(code).retryable => return Err(err.to_status()),
        _ => L::Unknown,
    };
    Ok(error(code, err.message))
}

/// Seconds as ldlm sends them: `None` for absent or 0, an error if negative.
fn seconds(value: Option<i32>, what: &str) -> Result<Option<u64>, Option<pb::Error>> {
    match value {
        None | Some(0) => Ok(None),
        Some(s) if s < 0 => Err(error(pb::ErrorCode::Unknown, format!("{what} must be greater than 0"))),
        Some(s) => Ok(Some(s as u64 * 1000)),
    }
}

fn refused(name: String, error: Option<pb::Error>) -> pb::LockResponse {
    pb::LockResponse { locked: false, name, key: String::new(), error }
}

impl LdlmApi {
    /// A lock or try-lock; `session` holds the grant (the connection's, or
    /// a REST session's).
    pub async fn acquire(
        &self,
        session: Option<SessionId>,
        name: String,
        wait_ms: u64,
        lock_timeout: Option<i32>,
        size: Option<i32>,
    ) -> Result<pb::LockResponse, Status> {
        if name.is_empty() {
            return Ok(refused(name, error(pb::ErrorCode::Unknown, "lock name cannot be empty")));
        }
        let size = match size {
            None => 1,
            Some(s) if s <= 0 => {
                return Ok(refused(name, error(pb::ErrorCode::InvalidLockSize, "lock size must be greater than 0")))
            }
            Some(s) => s as u32,
        };
        let timeout = match seconds(lock_timeout, "lock timeout") {
            Ok(t) => t,
            Err(e) => return Ok(refused(name, e)),
        };
        let asked = Acquire {
            name: name.clone(),
            size: Some(size),
            ttl_ms: timeout,
            wait_ms: Some(wait_ms),
            session: session.map(|id| InSession { id, keep_alive: timeout.is_none() }),
            ..Acquire::default()
        };
        match asked.run(&self.service).await {
            Ok(granted) => Ok(pb::LockResponse { locked: true, name, key: granted.grant.key.to_string(), error: None }),
            Err(err) if err.code == ErrorCode::LockBusy => {
                let key = LockKey::from_u128(rand::random()).to_string();
                Ok(pb::LockResponse { locked: false, name, key, error: None })
            }
            Err(err) => Ok(refused(name, ldlm_error(err)?)),
        }
    }

    /// Releases `req.key`'s hold of `req.name`.
    pub async fn unlock(&self, req: pb::UnlockRequest) -> Result<pb::UnlockResponse, Status> {
        let name = req.name.clone();
        let answer =
            |error: Option<pb::Error>| pb::UnlockResponse { unlocked: error.is_none(), name: name.clone(), error };
        let Ok(key) = LockKey::new(req.key) else {
            return Ok(answer(error(pb::ErrorCode::InvalidLockKey, "invalid lock key")));
        };
        match (Release { name: req.name, key }).run(&self.service).await {
            Ok(_) => Ok(answer(None)),
            Err(err) if err.code == ErrorCode::NotFound => {
                Ok(answer(error(pb::ErrorCode::LockDoesNotExist, "a lock by that name does not exist")))
            }
            Err(err) if err.code == ErrorCode::NotHolder => {
                Ok(answer(error(pb::ErrorCode::InvalidLockKey, "invalid lock key")))
            }
            Err(err) => Ok(answer(ldlm_error(err)?)),
        }
    }

    /// Renews a hold for `req.lock_timeout_seconds`.
    pub async fn renew(&self, req: pb::RenewRequest) -> Result<pb::LockResponse, Status> {
        let gone = || error(pb::ErrorCode::LockDoesNotExistOrInvalidKey, "lock does not exist or invalid key");
        if req.lock_timeout_seconds <= 0 {
            return Ok(refused(req.name, error(pb::ErrorCode::Unknown, "lock timeout must be greater than 0")));
        }
        let Ok(key) = LockKey::new(req.key.clone()) else { return Ok(refused(req.name, gone())) };
        let ttl_ms = req.lock_timeout_seconds as u64 * 1000;
        match (Refresh { name: req.name.clone(), key, ttl_ms: Some(ttl_ms) }).run(&self.service).await {
            Ok(_) => Ok(pb::LockResponse { locked: true, name: req.name, key: req.key, error: None }),
            Err(err) if matches!(err.code, ErrorCode::NotHolder | ErrorCode::NotFound) => Ok(refused(req.name, gone())),
            Err(err) => Ok(refused(req.name, ldlm_error(err)?)),
        }
    }
}

#[tonic::async_trait]
impl Ldlm for LdlmApi {
    async fn lock(&self, request: Request<pb::LockRequest>) -> Result<Response<pb::LockResponse>, Status> {
        let conn = request.extensions().get::<Conn>().copied();
        let req = request.into_inner();
        let max_wait_ms = self.service.config().limits.max_wait_ms;
        let wait_ms = match seconds(req.wait_timeout_seconds, "wait timeout") {
            Ok(wait) => wait.map_or(max_wait_ms, |w| w.min(max_wait_ms)),
            Err(e) => return Ok(Response::new(refused(req.name, e))),
        };
        let session = self.connection_session(conn)?;
        self.acquire(session, req.name, wait_ms, req.lock_timeout_seconds, req.size).await.map(Response::new)
    }

    async fn try_lock(&self, request: Request<pb::TryLockRequest>) -> Result<Response<pb::LockResponse>, Status> {
        let conn = request.extensions().get::<Conn>().copied();
        let req = request.into_inner();
        let session = self.connection_session(conn)?;
        self.acquire(session, req.name, 0, req.lock_timeout_seconds, req.size).await.map(Response::new)
    }

    async fn unlock(&self, request: Request<pb::UnlockRequest>) -> Result<Response<pb::UnlockResponse>, Status> {
        LdlmApi::unlock(self, request.into_inner()).await.map(Response::new)
    }

    async fn renew(&self, request: Request<pb::RenewRequest>) -> Result<Response<pb::LockResponse>, Status> {
        LdlmApi::renew(self, request.into_inner()).await.map(Response::new)
    }
}
