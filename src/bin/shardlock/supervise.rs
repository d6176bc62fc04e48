//! Running a command while something is held (a lock, a leadership): the
//! command gets SIGTERM when it is lost, and 10 s later SIGKILL.

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

/// How a supervised command ended.
pub enum Ended {
    /// It exited on its own, with this status.
    Exited(ExitStatus),
    /// What it ran under was lost (or ^C came) first: it was stopped.
    Stopped,
}

/// Runs `cmd` with `env` until it exits or `lost` resolves.
pub async fn supervise(
    cmd: &[String],
    env: &[(&str, String)],
    lost: impl Future<Output = String>,
) -> anyhow::Result<Ended> {
    let mut child = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {:?}: {e}", cmd[0]))?;
    let pid = child.id();
    let outcome = tokio::select! {
        status = child.wait() => return Ok(Ended::Exited(status?)),
        reason = lost => reason,
        _ = tokio::signal::ctrl_c() => "interrupted".to_owned(),
    };
    eprintln!("shardlock: {outcome}; stopping the command");
    if let Some(pid) = pid {
        // SAFETY: sends a signal to our own child process by pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    Ok(Ended::Stopped)
}

/// The exit code of a command that exited with `status`.
pub fn exit_code(status: ExitStatus) -> u8 {
    status.code().unwrap_or(1).clamp(0, 255) as u8
}
