//! Session calls: open, keepalive, close (grants of a closed session are
//! released).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::{parse, RawBody, Svc};
use crate::service::ops::session::{self, OpenSession};

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
    let opened = OpenSession { ttl_ms: b.ttl_ms, conn: None }.run(&svc)?;
    Ok(Json(SessionReply { session_id: opened.id, ttl_ms: opened.ttl.as_millis() as u64 }))
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
    Ok(Json(SessionClosed { released: session::close(&svc, b.session_id)? }))
}
