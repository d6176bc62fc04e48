//! A session's keepalive TTL: the one check, for every surface and for the
//! config's `session_ttl_ms`.
//!
//! Invariant: a session TTL lies within `limits.min_ttl_ms ..=
//! limits.max_ttl_ms`, the bounds of a lock's lease.

use std::time::Duration;

use crate::config::{check_session_ttl, Config};
use crate::error::{ApiError, ErrorCode};

/// The TTL of a session that asked for `asked` (`None`: the node's
/// `session_ttl_ms`).
pub fn session_ttl(asked: Option<u64>, config: &Config) -> Result<Duration, ApiError> {
    let ttl_ms = asked.unwrap_or(config.session_ttl_ms);
    check_session_ttl(ttl_ms, &config.limits).map_err(|why| ApiError::new(ErrorCode::InvalidTtl, why))?;
    Ok(Duration::from_millis(ttl_ms))
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
