//! ldlm v1 compatibility, checked with the real ldlm Python client
//! (`py-ldlm` from PyPI, installed by `make test`).

use std::time::Duration;

use crate::harness::Cluster;

#[tokio::test]
async fn the_ldlm_python_client_works_unchanged() {
    let cluster = Cluster::start(3, 8).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ldlm_client.py");
    let run = tokio::process::Command::new("python3").arg(script).arg(cluster.addr(2)).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the ldlm client script finished in time")
        .expect("python3 runs (make test installs py-ldlm)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("OK"),
        "py-ldlm failed:\n{stdout}\n{stderr}\n{}",
        cluster.log_tail(2)
    );
}
