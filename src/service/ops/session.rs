//! Sessions: open, keep alive, close. Grants held under a session are
//! released when it ends (`upkeep::sessions` keeps the registry).
//!
//! Invariant: a session TTL lies within `limits.min_ttl_ms ..=
//! limits.max_ttl_ms`, the bounds of a lock's lease; the one check is
//! `config::check_session_ttl`, for every surface and the config.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{check_session_ttl, Config};
use crate::error::{ApiError, ErrorCode};
use crate::service::LockService;
use crate::upkeep::sessions::{self, ConnId, SessionId};
use crate::upkeep::Propose;

/// The TTL of a session that asked for `asked` (`None`: the node's
/// `session_ttl_ms`).
pub fn session_ttl(asked: Option<u64>, config: &Config) -> Result<Duration, ApiError> {
    let ttl_ms = asked.unwrap_or(config.session_ttl_ms);
    check_session_ttl(ttl_ms, &config.limits).map_err(|why| ApiError::new(ErrorCode::InvalidTtl, why))?;
    Ok(Duration::from_millis(ttl_ms))
}

/// Opens a session that ends after its TTL without a keepalive (and, when
/// `conn` is given, when that connection closes).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenSession {
    pub ttl_ms: Option<u64>,
    pub conn: Option<ConnId>,
}

/// An open session: its id and keepalive TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOpened {
    pub id: SessionId,
    pub ttl: Duration,
}

impl OpenSession {
    pub fn run(self, svc: &LockService) -> Result<SessionOpened, ApiError> {
        svc.admit()?;
        let ttl = session_ttl(self.ttl_ms, svc.config())?;
        let id = svc.sessions().open(self.conn, Some(ttl))?;
        Ok(SessionOpened { id, ttl })
    }
}

/// Ends session `id` and releases its grants; returns how many it held.
pub fn close(svc: &Arc<LockService>, id: SessionId) -> Result<usize, ApiError> {
    svc.sessions().check(id)?;
    let holds = svc.sessions().close(id);
    let held = holds.len();
    release(svc, holds);
    Ok(held)
}

/// Ends the sessions of a client connection that closed, releasing their
/// grants.
pub fn connection_closed(svc: &Arc<LockService>, conn: ConnId) {
    release(svc, svc.sessions().connection_closed(conn));
}

fn release(svc: &Arc<LockService>, holds: Vec<sessions::Hold>) {
    let propose: Arc<dyn Propose> = svc.clone();
    sessions::release(&propose, svc.config().groups, holds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_the_lease_limits() {
        let config = Config::default();
        let (min, max) = (config.limits.min_ttl_ms, config.limits.max_ttl_ms);
        assert_eq!(session_ttl(None, &config).unwrap(), Duration::from_millis(config.session_ttl_ms));
        assert_eq!(session_ttl(Some(min), &config).unwrap(), Duration::from_millis(min));
        assert_eq!(session_ttl(Some(max), &config).unwrap(), Duration::from_millis(max));
        for bad in [0, min - 1, max + 1, u64::MAX] {
            let err = session_ttl(Some(bad), &config).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidTtl, "{bad}");
            assert!(err.message.contains("limits.min_ttl_ms"), "{}", err.message);
        }
    }
}
