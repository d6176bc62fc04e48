//! An acquire as a client asked for it, before defaults.
//!
//! Every field a client may leave out is an `Option` here and gets its
//! default in [`Acquire::params`] only: size 1, permits 1, the node's
//! `default_ttl_ms`, no wait. The limits are checked by the lock service
//! on the filled-in request ([`LockService::acquire`]).
//!
//! [`LockService::acquire`]: crate::server::LockService::acquire

use crate::config::Config;
use crate::lock::LockKey;
use crate::server::sessions::SessionId;
use crate::server::AcquireParams;

#[derive(Clone, Debug, Default)]
pub struct Acquire {
    pub name: String,
    /// The holder key to use; `None` draws a random one.
    pub key: Option<LockKey>,
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: Option<u64>,
    /// Session to hold the grant under, and whether the node keeps its
    /// lease alive while the session lives.
    pub session: Option<(SessionId, bool)>,
}

impl Acquire {
    /// The request with every default filled in from `config`.
    pub fn params(self, config: &Config) -> AcquireParams {
        AcquireParams {
            name: self.name,
            key: self.key,
            size: self.size.unwrap_or(1),
            permits: self.permits.unwrap_or(1),
            ttl_ms: self.ttl_ms.unwrap_or(config.default_ttl_ms),
            wait_ms: self.wait_ms.unwrap_or(0),
            session: self.session,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_one_place() {
        let config = Config { default_ttl_ms: 7_000, ..Config::default() };
        let p = Acquire { name: "a".into(), ..Acquire::default() }.params(&config);
        assert_eq!((p.size, p.permits, p.ttl_ms, p.wait_ms), (1, 1, 7_000, 0));
        let asked = Acquire {
            name: "a".into(),
            size: Some(8),
            permits: Some(2),
            ttl_ms: Some(900),
            wait_ms: Some(5),
            ..Acquire::default()
        };
        let p = asked.params(&config);
        assert_eq!((p.size, p.permits, p.ttl_ms, p.wait_ms), (8, 2, 900, 5));
    }
}
