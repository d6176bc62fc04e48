//! The options of a connection and of an acquire.

use tonic::transport::ClientTlsConfig;

use crate::lock::Mode;
use crate::proto::v1 as pb;

/// Options of an acquire; the defaults ask for an exclusive try-lock of a
/// mutex with the server's default TTL, a key drawn by the client and no
/// value.
#[derive(Clone, Debug, Default)]
pub struct AcquireOptions {
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: u64,
    pub key: Option<String>,
    /// Shared holds hold together (locks of size 1 only).
    pub mode: Mode,
    /// A value the holder carries (at most the cluster's `max_value_bytes`).
    pub value: Option<Vec<u8>>,
}

impl AcquireOptions {
    /// The request these options ask for, with `key` and `session_id`.
    pub(super) fn request(&self, name: &str, key: String, session_id: u64) -> pb::AcquireRequest {
        let mode = match self.mode {
            Mode::Exclusive => pb::Mode::Exclusive,
            Mode::Shared => pb::Mode::Shared,
        };
        pb::AcquireRequest {
            name: name.as_bytes().to_vec(),
            size: self.size,
            permits: self.permits,
            ttl_ms: self.ttl_ms,
            wait_ms: self.wait_ms,
            key,
            session_id,
            mode: mode as i32,
            value: self.value.clone(),
        }
    }
}

/// How to reach a cluster: credentials and TLS.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// The shared secret, for clusters that set `auth.token`.
    pub token: Option<String>,
    /// TLS, for clusters that set `tls.cert_file` (see `crate::tls::client`).
    pub tls: Option<ClientTlsConfig>,
}
