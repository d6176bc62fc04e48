//! The real `shardlock` binary, as a user runs it.

use std::process::Command;

fn shardlock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shardlock")).args(args).output().expect("run shardlock")
}

#[test]
fn default_config_round_trips_through_check() {
    let out = shardlock(&["config", "default"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let checked = shardlock(&["config", "check", file.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("groups = 4"));
}

#[test]
fn a_bad_config_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "groups = 0\n").unwrap();
    let out = shardlock(&["config", "check", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("groups is 0"));
}

#[test]
fn group_of_matches_the_library() {
    let out = shardlock(&["group-of", "orders/42", "--groups", "64"]);
    let printed: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(printed, shardlock::routing::group_of(b"orders/42", 64));
}

#[tokio::test]
async fn a_node_refuses_a_data_dir_made_with_another_group_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Record the identity of a 32-group node (the default is 8), as its
    // first start would.
    shardlock::testing::ensure_identity(&data, 1, 32).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardlock"))
        .args(["serve", "--client-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("a node with a mismatched group count must exit")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("groups = 32") && err.contains("says 4"), "{err}");
}

#[tokio::test]
async fn a_first_start_is_quiet_and_says_how_to_try_it() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardlock"))
        .args(["serve", "--client-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let until_try = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("try it: shardlock lock demo");
            seen.push(line);
            if done {
                return;
            }
        }
    };
    let started = tokio::time::timeout(std::time::Duration::from_secs(30), until_try).await;
    // SAFETY: signals our own child process by its pid.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    let exited = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await;
    let text = seen.join("\n");
    assert!(started.is_ok(), "no start lines within 30 s:\n{text}");
    let status = exited.expect("the node stops within 30 s of SIGTERM").unwrap();
    assert!(status.success(), "SIGTERM ends a node cleanly: {status}");
    assert!(text.contains("shardlock node listening: client=127.0.0.1:"), "{text}");
    assert!(text.contains(&format!("data in {}", data.display())), "{text}");
    for bad in ["WARN", "ERROR", "panicked"] {
        assert!(!text.contains(bad), "a first start printed {bad}:\n{text}");
    }
}
