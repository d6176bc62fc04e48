//! Sessions: grants that live as long as a client's session on this node.
//!
//! A session is opened by a gRPC `Session` stream, by REST, or implicitly
//! for an ldlm connection. Grants acquired under it are recorded here; the
//! node refreshes the ones marked `auto_refresh` while the session lives and
//! releases all of them when it ends (closed, keepalive missed, connection
//! dropped). Sessions are node-local and not replicated: if this node dies,
//! each grant's lease TTL is the backstop.
//!
//! The loop here ends sessions whose keepalive lapsed and refreshes the
//! leases their holds keep alive; ended sessions' holds are released in the
//! background ([`release`]), also while the node drains.
//!
//! Invariants: a session id is unique on this node and never reused (random
//! 53 bits, nonzero, exact as a JSON number); a session ends at most once, and ending returns its
//! holds exactly once; the number of sessions is bounded by `max_sessions`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::watch;

use super::Propose;
use crate::error::{ApiError, ErrorCode};
use crate::lock::{Command, LockError, LockKey, Outcome};
use crate::routing::group_of;

/// How often sessions are checked for expiry and due refreshes.
const EVERY: Duration = Duration::from_millis(100);

pub type SessionId = u64;
/// A client connection on the client port.
pub type ConnId = u64;

/// One grant held under a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub name: String,
    pub key: LockKey,
    /// Refreshed by the node while the session lives (else the client must).
    pub auto_refresh: bool,
    pub ttl_ms: u64,
}

struct Session {
    conn: Option<ConnId>,
    /// `None`: lives until its connection closes (ldlm).
    ttl: Option<Duration>,
    expires: Option<Instant>,
    holds: HashMap<(String, LockKey), Hold>,
    /// When each auto-refreshed hold is next due for a refresh.
    refresh_at: HashMap<(String, LockKey), Instant>,
}

pub struct Sessions {
    map: DashMap<SessionId, Arc<Mutex<Session>>>,
    by_conn: DashMap<ConnId, SessionId>,
    /// The session each hold is recorded under, so a release finds it at once.
    by_hold: DashMap<(String, LockKey), SessionId>,
    max: usize,
}

fn no_session(id: SessionId) -> ApiError {
    ApiError::new(
        ErrorCode::NoSession,
        format!("session {id} is not open on this node (closed, expired or opened elsewhere): open a new one"),
    )
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self { map: DashMap::new(), by_conn: DashMap::new(), by_hold: DashMap::new(), max }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Opens a session that ends after `ttl` without a keepalive (and, if
    /// `conn` is given, when that connection closes).
    pub fn open(&self, conn: Option<ConnId>, ttl: Option<Duration>) -> Result<SessionId, ApiError> {
        if self.map.len() >= self.max {
            let msg = format!("this node already has {} sessions: close some or retry later", self.max);
            return Err(ApiError::new(ErrorCode::TooManyWaiters, msg));
        }
        // 53 bits, so that JSON clients (JavaScript numbers) keep ids exact.
        let draw = || rand::random::<u64>() >> 11;
        let mut id: SessionId = draw();
        while id == 0 || self.map.contains_key(&id) {
            id = draw();
        }
        let expires = ttl.map(|t| Instant::now() + t);
        self.map.insert(
            id,
            Arc::new(Mutex::new(Session { conn, ttl, expires, holds: HashMap::new(), refresh_at: HashMap::new() })),
        );
        Ok(id)
    }

    /// The session that lives as long as connection `conn` (created on first use).
    pub fn for_connection(&self, conn: ConnId) -> Result<SessionId, ApiError> {
        if let Some(id) = self.by_conn.get(&conn).map(|r| *r) {
            return Ok(id);
        }
        let id = self.open(Some(conn), None)?;
        self.by_conn.insert(conn, id);
        Ok(id)
    }

    fn get(&self, id: SessionId) -> Result<Arc<Mutex<Session>>, ApiError> {
        self.map.get(&id).map(|s| s.clone()).ok_or_else(|| no_session(id))
    }

    /// Pushes the session's expiry back by its TTL.
    pub fn keepalive(&self, id: SessionId) -> Result<Duration, ApiError> {
        let session = self.get(id)?;
        let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
        s.expires = s.ttl.map(|t| Instant::now() + t);
        Ok(s.ttl.unwrap_or_default())
    }

    /// Fails unless session `id` is open on this node.
    pub fn check(&self, id: SessionId) -> Result<(), ApiError> {
        self.get(id).map(|_| ())
    }

    pub fn add_hold(&self, id: SessionId, hold: Hold) -> Result<(), ApiError> {
        let session = self.get(id)?;
        let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
        let session_id = id;
        let id = (hold.name.clone(), hold.key.clone());
        if hold.auto_refresh {
            s.refresh_at.insert(id.clone(), Instant::now() + Duration::from_millis(hold.ttl_ms / 3));
        }
        self.by_hold.insert(id.clone(), session_id);
        s.holds.insert(id, hold);
        Ok(())
    }

    /// Forgets a grant (released or lost) wherever it is recorded: one
    /// lookup, nothing at all when no session holds anything.
    pub fn remove_hold(&self, name: &str, key: &LockKey) {
        if self.by_hold.is_empty() {
            return;
        }
        let id = (name.to_owned(), key.clone());
        let Some((_, session)) = self.by_hold.remove(&id) else { return };
        if let Some(session) = self.map.get(&session).map(|s| s.clone()) {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            s.holds.remove(&id);
            s.refresh_at.remove(&id);
        }
    }

    /// Ends session `id`; returns its holds, to be released.
    pub fn close(&self, id: SessionId) -> Vec<Hold> {
        let Some((_, session)) = self.map.remove(&id) else { return Vec::new() };
        let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = s.conn {
            self.by_conn.remove_if(&conn, |_, v| *v == id);
        }
        for hold in s.holds.keys() {
            self.by_hold.remove_if(hold, |_, v| *v == id);
        }
        s.holds.drain().map(|(_, h)| h).collect()
    }

    /// Ends every session bound to connection `conn`.
    pub fn connection_closed(&self, conn: ConnId) -> Vec<Hold> {
        let ids: Vec<SessionId> = self
            .map
            .iter()
            .filter(|e| e.value().lock().unwrap_or_else(|p| p.into_inner()).conn == Some(conn))
            .map(|e| *e.key())
            .collect();
        ids.into_iter().flat_map(|id| self.close(id)).collect()
    }

    /// Sessions whose keepalive deadline passed.
    pub fn expired(&self, now: Instant) -> Vec<SessionId> {
        self.map
            .iter()
            .filter(|e| e.value().lock().unwrap_or_else(|p| p.into_inner()).expires.is_some_and(|t| t <= now))
            .map(|e| *e.key())
            .collect()
    }

    /// The auto-refreshed holds due for a refresh (a third of their TTL
    /// after the last one); each is scheduled again.
    pub fn due_refreshes(&self, now: Instant) -> Vec<Hold> {
        let mut out = Vec::new();
        for entry in self.map.iter() {
            let mut guard = entry.value().lock().unwrap_or_else(|p| p.into_inner());
            let s = &mut *guard;
            for (id, at) in s.refresh_at.iter_mut() {
                let Some(hold) = s.holds.get(id) else { continue };
                if *at <= now {
                    *at = now + Duration::from_millis(hold.ttl_ms / 3);
                    out.push(hold.clone());
                }
            }
        }
        out
    }
}

/// Whether an answer says the key holds nothing (it was released, it
/// expired, or its emptied lock was deleted).
fn not_held(answer: &Result<Outcome, ApiError>) -> bool {
    match answer {
        Ok(outcome) => outcome.reply.as_ref().is_err_and(|e| matches!(e, LockError::NotHolder | LockError::NotFound)),
        Err(err) => err.code.means_not_held(),
    }
}

/// Releases `holds` in the background (their session ended); `groups` is
/// the cluster's group count.
pub fn release(propose: &Arc<dyn Propose>, groups: u32, holds: Vec<Hold>) {
    for hold in holds {
        let propose = propose.clone();
        tokio::spawn(async move {
            let group = group_of(hold.name.as_bytes(), groups);
            let answer = propose.propose(group, Command::Release { name: hold.name, key: hold.key }).await;
            let failed = match &answer {
                Ok(outcome) => outcome.reply.as_ref().err().map(|e| e.to_string()),
                Err(err) => Some(err.to_string()),
            };
            if let (Some(why), false) = (failed, not_held(&answer)) {
                tracing::warn!(error = %why, "releasing a grant of an ended session failed");
            }
        });
    }
}

/// Every `EVERY`, ends expired sessions (releasing their holds) and
/// refreshes the leases of the holds live sessions keep alive, until
/// `shutdown` turns true.
pub async fn run(sessions: Arc<Sessions>, propose: Arc<dyn Propose>, groups: u32, mut shutdown: watch::Receiver<bool>) {
    while crate::rounds::next(EVERY, &mut shutdown).await {
        let now = Instant::now();
        for id in sessions.expired(now) {
            release(&propose, groups, sessions.close(id));
        }
        for hold in sessions.due_refreshes(now) {
            let (sessions, propose) = (sessions.clone(), propose.clone());
            tokio::spawn(async move {
                let group = group_of(hold.name.as_bytes(), groups);
                let refresh =
                    Command::Refresh { name: hold.name.clone(), key: hold.key.clone(), ttl_ms: Some(hold.ttl_ms) };
                if not_held(&propose.propose(group, refresh).await) {
                    sessions.remove_hold(&hold.name, &hold.key);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(name: &str, auto_refresh: bool) -> Hold {
        Hold { name: name.into(), key: LockKey::new("k").unwrap(), auto_refresh, ttl_ms: 1000 }
    }

    #[test]
    fn a_session_returns_its_holds_once() {
        let sessions = Sessions::new(10);
        let id = sessions.open(None, Some(Duration::from_secs(5))).unwrap();
        sessions.add_hold(id, hold("a", true)).unwrap();
        sessions.add_hold(id, hold("b", false)).unwrap();
        assert!(sessions.due_refreshes(Instant::now()).is_empty());
        let later = Instant::now() + Duration::from_millis(400);
        assert_eq!(sessions.due_refreshes(later), vec![hold("a", true)]);
        assert!(sessions.due_refreshes(later).is_empty(), "scheduled again a third of the ttl later");
        sessions.remove_hold("b", &LockKey::new("k").unwrap());
        assert_eq!(sessions.close(id), vec![hold("a", true)]);
        assert!(sessions.close(id).is_empty());
        assert_eq!(sessions.keepalive(id).unwrap_err().code, ErrorCode::NoSession);
    }

    #[test]
    fn connections_and_expiry_end_sessions() {
        let sessions = Sessions::new(10);
        let conn_session = sessions.for_connection(7).unwrap();
        assert_eq!(sessions.for_connection(7).unwrap(), conn_session);
        sessions.add_hold(conn_session, hold("c", true)).unwrap();
        let timed = sessions.open(None, Some(Duration::from_millis(10))).unwrap();
        assert_eq!(sessions.expired(Instant::now() + Duration::from_millis(20)), vec![timed]);
        assert_eq!(sessions.connection_closed(7), vec![hold("c", true)]);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let sessions = Sessions::new(1);
        sessions.open(None, None).unwrap();
        assert!(sessions.open(None, None).is_err());
    }
}
