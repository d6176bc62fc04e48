//! TLS material from PEM files, for the client port, the peer port and the
//! Rust client.
//!
//! Invariants: TLS is on for a node exactly when `tls.cert_file` is set, and
//! then on both ports; peers always verify each other against `tls.ca_file`
//! and present their own certificate (mutual TLS between nodes); clients must
//! present a certificate signed by `tls.client_ca_file` when it is set. Key
//! material is read once at start-up and never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable {what} in PEM form")]
    Pem { path: PathBuf, what: &'static str },
    #[error("tls setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verification setup failed: {0}")]
    Verifier(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.into(), what: "certificate" });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|_| TlsError::Pem { path: path.into(), what: "private key" })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client port's TLS server config (HTTP/2 and HTTP/1.1 by ALPN).
pub fn client_port(tls: &TlsConfig) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (Some(cert), Some(key_file)) = (&tls.cert_file, &tls.key_file) else { return Ok(None) };
    let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs(cert)?, key(key_file)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The ALPN name of the peer protocol.
const PEER_ALPN: &[u8] = b"shardlock-peer/1";

fn roots(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// The peer port's TLS: this node's identity; peers must present a
/// certificate signed by the CA (mutual TLS).
pub fn peer_server(tls: &TlsConfig) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    let (Some(cert), Some(key_file), Some(ca)) = (&tls.cert_file, &tls.key_file, &tls.ca_file) else { return Ok(None) };
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert)?, key(key_file)?)?;
    config.alpn_protocols = vec![PEER_ALPN.to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// How this node dials its peers: verifying them by the CA, presenting its
/// own certificate.
pub fn peer_client(tls: &TlsConfig) -> Result<Option<tokio_rustls::TlsConnector>, TlsError> {
    let (Some(cert), Some(key_file), Some(ca)) = (&tls.cert_file, &tls.key_file, &tls.ca_file) else { return Ok(None) };
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(certs(cert)?, key(key_file)?)?;
    config.alpn_protocols = vec![PEER_ALPN.to_vec()];
    Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(config))))
}

/// A client's TLS: trust `ca`, and present `cert`/`key` if given (mutual TLS).
pub fn client(ca: &Path, cert: Option<&Path>, key_file: Option<&Path>) -> Result<ClientTlsConfig, TlsError> {
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let (Some(cert), Some(key_file)) = (cert, key_file) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key_file)?));
    }
    Ok(config)
}
