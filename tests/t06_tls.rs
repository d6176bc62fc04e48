//! TLS on both ports: mutual TLS between nodes, TLS (and optionally mutual
//! TLS) for clients, with certificates generated for the test (rcgen).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use shardlock::client::{AcquireOptions, Client, ClientOptions};

use crate::fixtures::harness::Cluster;

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    Ca { cert, key }
}

/// Writes `<name>.pem` and `<name>.key`, signed by `ca`, valid for loopback.
fn leaf(dir: &Path, ca: &Ca, name: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (pem, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&pem, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (pem, key_path)
}

fn tls_options(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> ClientOptions {
    let (cert, key) = identity.map(|(c, k)| (Some(c.as_path()), Some(k.as_path()))).unwrap_or((None, None));
    ClientOptions { token: None, tls: Some(shardlock::tls::client(ca, cert, key).unwrap()) }
}

#[tokio::test]
async fn nodes_and_clients_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let node_ca = ca(dir.path(), "nodes-ca");
    let (cert, key) = leaf(dir.path(), &node_ca, "node");
    let ca_file = dir.path().join("nodes-ca.pem");
    let extra = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n",
        cert.display(),
        key.display(),
        ca_file.display()
    );
    // Three nodes that can only elect leaders over mutual TLS.
    let cluster = Cluster::start_with_options(3, 4, &extra, tls_options(&ca_file, None)).await;
    let client = cluster.client(2).await;
    let grant = client.acquire("tls/a", AcquireOptions::default()).await.unwrap();
    let lock = cluster.client(3).await.describe("tls/a").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].key, grant.key);

    // A plaintext client, or one trusting another CA, gets nowhere.
    assert!(Client::connect(&cluster.addr(1)).await.is_err());
    let stranger_ca = ca(dir.path(), "stranger-ca");
    drop(stranger_ca);
    let stranger = tls_options(&dir.path().join("stranger-ca.pem"), None);
    assert!(Client::connect_opts(&[cluster.addr(1).as_str()], &stranger).await.is_err());
}

#[tokio::test]
async fn client_certificates_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let node_ca = ca(dir.path(), "nodes-ca");
    let client_ca = ca(dir.path(), "clients-ca");
    let (cert, key) = leaf(dir.path(), &node_ca, "node");
    let identity = leaf(dir.path(), &client_ca, "client");
    let ca_file = dir.path().join("nodes-ca.pem");
    let extra = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        cert.display(),
        key.display(),
        ca_file.display(),
        dir.path().join("clients-ca.pem").display()
    );
    let cluster = Cluster::start_with_options(1, 4, &extra, tls_options(&ca_file, Some(&identity))).await;
    cluster.client(1).await.acquire("mtls/a", AcquireOptions::default()).await.unwrap();
    let anonymous = tls_options(&ca_file, None);
    let refused = match Client::connect_opts(&[cluster.addr(1).as_str()], &anonymous).await {
        Err(_) => true,
        Ok(client) => client.acquire("mtls/b", AcquireOptions::default()).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
}
