//! Acquire: take permits of a lock (a mutex or a counting semaphore), at
//! once or after waiting in its FIFO queue.
//!
//! Every field a client may leave out is an `Option` in [`Acquire`] and
//! gets its default in [`Acquire::into_command`] only: size 1, permits 1, the
//! node's `default_ttl_ms`, no wait, a random key, exclusive, no value. A blocking acquire waits
//! on this node, which learns of its grant when it applies it; when this
//! node holds no replica of the lock's group, the wait runs on a node that
//! does ([`serve_forwarded`] there). An abandoned or timed-out wait
//! proposes `CancelWait`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::faults;
use crate::lock::{AcquireCmd, Command, Grant, LockError, LockKey, Mode, Reply, Value};
use crate::routing::GroupId;
use crate::service::errors::{internal, replica_left, unavailable};
use crate::service::forward::call;
use crate::service::wait::WaitGuard;
use crate::service::{LockService, Meta};
use crate::upkeep::sessions::{Hold, SessionId};

/// An acquire as a client asked for it, before defaults.
#[derive(Clone, Debug, Default)]
pub struct Acquire {
    pub name: String,
    /// The holder key to use; `None` draws a random one.
    pub key: Option<LockKey>,
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: Option<u64>,
    /// Shared or exclusive (the default); shared only for a lock of size 1.
    pub mode: Option<Mode>,
    /// The value the holder carries (at most `max_value_bytes`).
    pub value: Option<Value>,
    /// The session to hold the grant under.
    pub session: Option<InSession>,
}

/// A grant's session, and whether this node keeps the grant's lease alive
/// while the session lives (ldlm locks with a timeout: no).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InSession {
    pub id: SessionId,
    pub keep_alive: bool,
}

/// The grant, where it was made, and the lock's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub meta: Meta,
    pub grant: Grant,
    pub size: u32,
}

impl Acquire {
    /// The lock command asked for: defaults filled in from `config` and
    /// checked against its limits, the key drawn if the client gave none.
    pub fn into_command(self, config: &Config) -> Result<AcquireCmd, ApiError> {
        let cmd = AcquireCmd {
            name: self.name,
            key: self.key.unwrap_or_else(|| LockKey::from_u128(rand::random())),
            size: self.size.unwrap_or(1),
            permits: self.permits.unwrap_or(1),
            ttl_ms: self.ttl_ms.unwrap_or(config.default_ttl_ms),
            wait_ms: self.wait_ms.unwrap_or(0),
            mode: self.mode.unwrap_or_default(),
            value: self.value,
        };
        let limits = &config.limits;
        limits.check_name(&cmd.name)?;
        limits.check_size(cmd.size)?;
        limits.check_permits(cmd.permits, cmd.size)?;
        limits.check_ttl(cmd.ttl_ms)?;
        limits.check_wait(cmd.wait_ms)?;
        limits.check_mode(cmd.mode, cmd.size)?;
        limits.check_value(cmd.value.as_ref())?;
        Ok(cmd)
    }

    pub async fn run(self, svc: &Arc<LockService>) -> Result<Granted, ApiError> {
        svc.admit()?;
        let session = self.session;
        if let Some(session) = session {
            svc.sessions().check(session.id)?;
        }
        let cmd = self.into_command(svc.config())?;
        let held_name = session.map(|_| cmd.name.clone());
        let (group, size, started) = (svc.group_of(&cmd.name), cmd.size, Instant::now());
        let acquired = if cmd.wait_ms > 0 && !svc.cluster().hosts(group) {
            // No replica here to learn of the grant: the wait runs where one is.
            wait_elsewhere(svc, group, &cmd).await
        } else {
            acquire_here(svc, group, cmd).await
        };
        let (index, grant) = acquired.map_err(answerable)?;
        if let (Some(session), Some(name)) = (session, held_name) {
            let hold = Hold { name, key: grant.key.clone(), auto_refresh: session.keep_alive, ttl_ms: grant.ttl_ms };
            if svc.sessions().add_hold(session.id, hold).is_err() {
                tracing::debug!(session = session.id, "grant outlived its session; its lease will expire");
            }
        }
        crate::metrics::wait_duration(started.elapsed());
        Ok(Granted { meta: svc.meta(group, index), grant, size })
    }
}

/// An acquire answers a grant, `LOCK_BUSY`, `WAIT_TIMEOUT`, a retryable
/// error (the client retries with the same key and keeps its place) or a
/// fault of the client's request. Whatever else reached here — the answer
/// of a command about a lock or wait that another request ended meanwhile —
/// is logged and answered as retryable.
fn answerable(err: ApiError) -> ApiError {
    match err.code {
        ErrorCode::NotFound | ErrorCode::NotHolder | ErrorCode::WaitCancelled | ErrorCode::Stale => {
            tracing::warn!(code = err.code.as_str_name(), error = %err.message, "an acquire met a stale answer; the client retries");
            unavailable(format!(
                "the wait ended under this request ({}): retry with the same key",
                err.code.as_str_name()
            ))
        }
        _ => err,
    }
}

/// Proposes `cmd` and, if it queues, waits on this node for its grant:
/// the grant and the index it was made (or last refreshed) at. A wait that
/// another request ended (an abandoned request with the same key, on some
/// node, cancelled it) queues again for the time left: the client is still
/// waiting.
async fn acquire_here(svc: &LockService, group: GroupId, cmd: AcquireCmd) -> Result<(u64, Grant), ApiError> {
    if cmd.wait_ms == 0 {
        // A try-lock never queues: it is granted or refused, with no wait to register.
        let applied = svc.write(group, &Command::Acquire(cmd)).await?;
        return match applied.outcome.reply? {
            Reply::Granted(grant) => Ok((applied.index, grant)),
            // Its key already waits (another request's blocking acquire).
            Reply::Queued { .. } => Err(LockError::Busy.into()),
            other => Err(internal(format!("a try-lock answered {other:?}"))),
        };
    }
    let deadline = Instant::now() + Duration::from_millis(cmd.wait_ms);
    let mut command = Command::Acquire(cmd);
    loop {
        let Command::Acquire(cmd) = &command else { return Err(internal("an acquire became another command")) };
        let mut wait = WaitGuard::register(svc.waits(), svc.routing(), group, &cmd.name, &cmd.key);
        let applied = svc.write(group, &command).await?;
        match applied.outcome.reply {
            Ok(Reply::Granted(grant)) => {
                wait.disarm();
                return Ok((applied.index, grant));
            }
            Ok(Reply::Queued { enqueue_index, .. }) => {
                if !svc.cluster().hosts(group) {
                    // The replica left since the check in `run` (its waits
                    // were answered before this one registered): this node
                    // would never apply the grant. The client's retry keeps
                    // the place, so nothing is cancelled.
                    wait.disarm();
                    return Err(replica_left());
                }
                wait.arm();
                if faults::BROKEN_ADMITS_QUEUED {
                    return Ok((enqueue_index, admitted(&command, enqueue_index)));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match wait.wait(left, enqueue_index).await {
                    Ok(grant) => return Ok((grant.lease_index, grant)),
                    // The wait ended before this request's deadline: another
                    // request with its key (an earlier try of a client's
                    // retry) cancelled it or ran out; this one queues again.
                    Err(err)
                        if matches!(err.code, ErrorCode::WaitCancelled | ErrorCode::WaitTimeout)
                            && Instant::now() < deadline =>
                    {
                        tracing::debug!(group, "a wait was ended by another request with its key; queueing again");
                        if let Command::Acquire(cmd) = &mut command {
                            cmd.wait_ms = deadline.saturating_duration_since(Instant::now()).as_millis().max(1) as u64;
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok(other) => return Err(internal(format!("acquire answered {other:?}"))),
            Err(err) => {
                wait.disarm();
                return Err(err.into());
            }
        }
    }
}

/// The grant the `chaos-broken` build makes up for a queued acquire
/// (`crate::faults`).
fn admitted(command: &Command, enqueue_index: u64) -> Grant {
    match command {
        Command::Acquire(c) => Grant {
            key: c.key.clone(),
            token: enqueue_index,
            permits: c.permits,
            mode: c.mode,
            ttl_ms: c.ttl_ms,
            lease_index: enqueue_index,
            value: c.value.clone(),
        },
        _ => Grant {
            key: LockKey::from_u128(0),
            token: enqueue_index,
            permits: 1,
            mode: Mode::Exclusive,
            ttl_ms: 0,
            lease_index: enqueue_index,
            value: None,
        },
    }
}

/// A blocking acquire of a group this node holds no replica of: the whole
/// wait runs on a node that does (its leader when known), which answers
/// when it grants. Dropping it (the client went away) proposes
/// `CancelWait`; the serving node cancels on its own if this node's
/// connection to it drops.
async fn wait_elsewhere(svc: &LockService, group: GroupId, cmd: &AcquireCmd) -> Result<(u64, Grant), ApiError> {
    let mut cancel = WaitGuard::register(svc.waits(), svc.routing(), group, &cmd.name, &cmd.key);
    cancel.arm();
    let router = svc.cluster().router();
    let not_here = || async { Err(ApiError::not_leader(None)) };
    let result = svc.routing().on_leader(group, not_here, |node| call::acquire(router, node, group, cmd)).await;
    cancel.disarm();
    result
}

/// Serves a blocking acquire forwarded by a node that holds no replica of
/// `group` (which checked it against the limits); refuses (retryably)
/// unless this node holds one.
pub async fn serve_forwarded(svc: &LockService, group: GroupId, cmd: AcquireCmd) -> Result<(u64, Grant), ApiError> {
    svc.admit()?;
    if !svc.cluster().hosts(group) {
        return Err(ApiError::not_leader(None));
    }
    acquire_here(svc, group, cmd).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits_come_from_one_place() {
        let config = Config { default_ttl_ms: 7_000, ..Config::default() };
        let cmd = Acquire { name: "a".into(), ..Acquire::default() }.into_command(&config).unwrap();
        assert_eq!((cmd.size, cmd.permits, cmd.ttl_ms, cmd.wait_ms), (1, 1, 7_000, 0));
        assert_eq!(cmd.key.as_str().len(), 32, "a drawn key");
        let asked = Acquire {
            name: "a".into(),
            key: Some(LockKey::new("k").unwrap()),
            size: Some(8),
            permits: Some(2),
            ttl_ms: Some(900),
            wait_ms: Some(5),
            ..Acquire::default()
        };
        let cmd = asked.into_command(&config).unwrap();
        assert_eq!((cmd.size, cmd.permits, cmd.ttl_ms, cmd.wait_ms, cmd.key.as_str()), (8, 2, 900, 5, "k"));
        let too_many = Acquire { name: "a".into(), size: Some(2), permits: Some(3), ..Acquire::default() };
        assert_eq!(too_many.into_command(&config).unwrap_err().code, ErrorCode::InvalidPermits);
        let shared_semaphore =
            Acquire { name: "a".into(), size: Some(2), mode: Some(Mode::Shared), ..Acquire::default() };
        assert_eq!(shared_semaphore.into_command(&config).unwrap_err().code, ErrorCode::InvalidArgument);
        let big = Value::from(vec![0; config.limits.max_value_bytes + 1]);
        let too_big = Acquire { name: "a".into(), value: Some(big), ..Acquire::default() };
        assert_eq!(too_big.into_command(&config).unwrap_err().code, ErrorCode::InvalidArgument);
        let nameless = Acquire::default();
        assert_eq!(nameless.into_command(&config).unwrap_err().code, ErrorCode::InvalidName);
    }
}
