//! Session calls: open, keepalive, close (grants of a closed session are
//! released).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::{parse, RawBody, Svc};
use crate::server::ops::session_ttl;

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionOpenBody {
    pub ttl_ms: Option<u64>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    pub session_id: u64,
}

#[derive(Serialize, Deserialize)]
pub struct SessionReply {
    pub session_id: u64,
    pub ttl_ms: u64,
}

pub async fn session_open(State(svc): Svc, RawBody(body): RawBody) -> Reply<SessionReply> {
    svc.admit()?;
    let b: SessionOpenBody = parse(&body)?;
    let ttl = session_ttl(b.ttl_ms, svc.config())?;
    let session_id = svc.sessions().open(None, Some(ttl))?;
    Ok(Json(SessionReply { session_id, ttl_ms: ttl.as_millis() as u64 }))
}

pub async fn session_keepalive(State(svc): Svc, RawBody(body): RawBody) -> Reply<SessionReply> {
    let b: SessionBody = parse(&body)?;
    let ttl = svc.sessions().keepalive(b.session_id)?;
    Ok(Json(SessionReply { session_id: b.session_id, ttl_ms: ttl.as_millis() as u64 }))
}

#[derive(Serialize, Deserialize)]
pub struct SessionClosed {
    pub released: usize,
}

pub async fn session_close(State(svc): Svc, RawBody(body): RawBody) -> Reply<SessionClosed> {
    let b: SessionBody = parse(&body)?;
    svc.sessions().check(b.session_id)?;
    let holds = svc.sessions().close(b.session_id);
    let released = holds.len();
    svc.release_holds(holds);
    Ok(Json(SessionClosed { released }))
}
