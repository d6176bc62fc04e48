//! The options of a connection and of an acquire.

use tonic::transport::ClientTlsConfig;

/// Options of an acquire; the defaults ask for a try-lock of a mutex with
/// the server's default TTL and a key drawn by the client.
#[derive(Clone, Debug, Default)]
pub struct AcquireOptions {
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: u64,
    pub key: Option<String>,
}

/// How to reach a cluster: credentials and TLS.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// The shared secret, for clusters that set `auth.token`.
    pub token: Option<String>,
    /// TLS, for clusters that set `tls.cert_file` (see `crate::tls::client`).
    pub tls: Option<ClientTlsConfig>,
}
