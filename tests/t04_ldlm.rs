//! ldlm v1 compatibility, checked with the real ldlm Python client
//! (`py-ldlm` from PyPI, installed by `make test`).

use std::time::Duration;

use crate::fixtures::harness::Cluster;

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

const TOKEN: &str = "ldlm-rest-token-0123456789";

/// One curl call with cookie jar `jar` (read and written, as ldlm's README
/// drives its REST API); returns the HTTP status and the body.
async fn curl(
    jar: &std::path::Path,
    auth: bool,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-s", "-X", method, "-w", "\n%{http_code}", "-c"]).arg(jar).arg("-b").arg(jar);
    if auth {
        cmd.args(["-u", &format!(":{TOKEN}")]);
    }
    if let Some(body) = body {
        cmd.args(["-d", body]);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.arg(url).kill_on_drop(true).output())
        .await
        .expect("curl finished in time")
        .expect("curl runs (make test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl printed a status");
    (status.parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn ldlm_rest_clients_work_with_a_cookie_jar() {
    let extra = format!("ldlm_rest_session_idle_ms = 1500\n[auth]\ntoken = \"{TOKEN}\"\n");
    let cluster = Cluster::start_with(3, 8, &extra).await;
    let base = format!("http://{}", cluster.addr(2));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let lock = format!("{base}/v1/lock");

    assert_eq!(curl(&a, false, "POST", &format!("{base}/session"), None).await.0, 401, "the password is required");
    let (status, opened) = curl(&a, true, "POST", &format!("{base}/session"), None).await;
    assert_eq!(status, 201);
    assert!(!opened["session_id"].as_str().unwrap().is_empty());
    assert_eq!(curl(&b, true, "POST", &format!("{base}/session"), None).await.0, 201);
    let (status, none) = curl(&dir.path().join("none.txt"), true, "POST", &lock, Some(r#"{"name": "r/a"}"#)).await;
    assert_eq!(status, 401, "a call without the session cookie is refused: {none}");

    let (_, got) = curl(&a, true, "POST", &lock, Some(r#"{"name": "r/a"}"#)).await;
    assert_eq!((got["locked"].as_bool(), got["name"].as_str()), (Some(true), Some("r/a")), "{got}");
    let key = got["key"].as_str().unwrap().to_owned();
    let (_, busy) = curl(&b, true, "POST", &lock, Some(r#"{"name": "r/a"}"#)).await;
    assert_eq!(busy["locked"], false, "lock is a try-lock: {busy}");
    let (_, mismatch) = curl(&b, true, "POST", &lock, Some(r#"{"name": "r/a", "size": 3}"#)).await;
    assert_eq!(mismatch["error"]["code"], "LockSizeMismatch", "{mismatch}");

    let renew = |key: &str| format!(r#"{{"name": "r/a", "key": "{key}", "lock_timeout_seconds": 30}}"#);
    let (_, renewed) = curl(&a, true, "POST", &format!("{base}/v1/renew"), Some(&renew(&key))).await;
    assert_eq!(renewed["locked"], true, "{renewed}");
    let (_, wrong) = curl(&a, true, "POST", &format!("{base}/v1/refreshlock"), Some(&renew("00ff"))).await;
    assert_eq!(wrong["error"]["code"], "LockDoesNotExistOrInvalidKey", "{wrong}");
    let unlock = format!(r#"{{"name": "r/a", "key": "{key}"}}"#);
    let (_, unlocked) = curl(&a, true, "POST", &format!("{base}/v1/unlock"), Some(&unlock)).await;
    assert_eq!(unlocked, serde_json::json!({"unlocked": true, "name": "r/a"}));

    // B takes the lock, then goes quiet: its session ends after 1.5 s idle
    // and its lock is released, so A's try-lock succeeds again.
    let (_, taken) = curl(&b, true, "POST", &lock, Some(r#"{"name": "r/a"}"#)).await;
    assert_eq!(taken["locked"], true, "{taken}");
    crate::fixtures::harness::wait_for("B's idle session to release r/a", Duration::from_secs(20), || async {
        let (_, got) = curl(&a, true, "POST", &lock, Some(r#"{"name": "r/a"}"#)).await;
        got["locked"].as_bool().unwrap_or(false).then_some(())
    })
    .await;
    assert_eq!(curl(&b, true, "POST", &lock, Some(r#"{"name": "r/b"}"#)).await.0, 401, "B's session has ended");

    // Deleting A's session releases what it holds.
    let (status, closed) = curl(&a, true, "DELETE", &format!("{base}/session"), None).await;
    assert_eq!((status, closed), (200, serde_json::json!({"session_id": ""})));
    let described = cluster.client(1).await.describe("r/a").await.unwrap();
    assert!(described.lock.is_none(), "a closed session's lock is released: {described:?}");
}
