//! RESP, the Redis protocol, on the client port: any Redis client in any
//! language, and `redis-cli` for people.
//!
//! The port tells RESP from HTTP by a connection's first byte (`*`, after
//! the TLS handshake when TLS is on). Requests are decoded, and replies
//! encoded, by the `redis-protocol` crate: RESP2 until a `HELLO 3`, RESP3
//! after it (maps are maps there, flat arrays of field, value in RESP2).
//! The commands are in [`command`], the replies in [`value`]; a refusal is
//! an error reply whose first word is the shardlock code (`-LOCK_BUSY …`).
//!
//! - Pipelining: the commands of a connection are proposed as they arrive,
//!   up to `MAX_IN_FLIGHT` at once, so a leader batches them; replies leave
//!   in request order. A `LOCK` that waits (`WAIT` > 0) blocks its
//!   connection, as `BLPOP` does: what follows it runs after it answers.
//! - Grants live by their lease (clients pool connections). `SESSION`
//!   makes the connection a session: its later grants are released when it
//!   closes, and those taken without a `TTL` are kept alive by this node
//!   while it lives (as ldlm connections are).
//! - When the node has a token, every command but `AUTH`, `HELLO … AUTH`
//!   and `QUIT` is refused with `UNAUTHENTICATED` until one presents it.
//!
//! Invariants: a connection's replies keep its requests' order; a frame
//! that does not decode, or that grows past `max_message_bytes`, is
//! answered with an error and the connection is closed — nothing panics;
//! the connection's session ends with it (the accept loop ends it).

pub mod command;
pub mod value;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use self::command::{Refused, Request};
use self::value::Value;
use crate::config::Secret;
use crate::error::{ApiError, ErrorCode};
use crate::lock::Grant;
use crate::service::ops::acquire::{Granted, InSession};
use crate::service::query::LockView;
use crate::service::LockService;
use crate::upkeep::sessions::{ConnId, SessionId};

/// Most commands of one connection in flight at once.
const MAX_IN_FLIGHT: usize = 256;
/// Replies gathered before they are written, at most.
const WRITE_AT: usize = 64 * 1024;
/// Room made in the input buffer before a read. A read into a full
/// `BytesMut` gets 64 bytes, less than a `LOCK` with a key: a command took
/// two `recvfrom`s, and a third that found nothing (tokio keeps a socket
/// readable after a read that filled the buffer).
const READ_ROOM: usize = 4096;

/// A reply, the protocol to encode it in, and whether it ends a blocking
/// command (the connection may read on).
type Pending = BoxFuture<'static, (Value, bool, bool)>;

/// One RESP connection's state.
struct Connection {
    svc: Arc<LockService>,
    conn: ConnId,
    token: Option<Arc<Secret>>,
    authed: bool,
    resp3: bool,
    session: Option<SessionId>,
}

/// Serves RESP on `stream` (whose first bytes, already read, are `first`)
/// until the client closes it or sends `QUIT`.
pub async fn serve<S>(stream: S, first: BytesMut, svc: Arc<LockService>, conn: ConnId, token: Option<Arc<Secret>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let max = svc.config().max_message_bytes;
    let authed = token.is_none();
    let mut this = Connection { svc, conn, token, authed, resp3: false, session: None };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (mut input, mut out) = (first, BytesMut::with_capacity(4096));
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let (mut blocked, mut closing) = (false, false);
    loop {
        while !closing && !blocked && pending.len() < MAX_IN_FLIGHT {
            let frame = match decode_bytes_mut(&mut input) {
                Ok(Some((frame, _, _))) => frame,
                Ok(None) if input.len() > max => {
                    let msg = format!("the request is over max_message_bytes ({max}): send a smaller one");
                    pending.push_back(ready(Value::error(&ApiError::new(ErrorCode::MessageTooLarge, msg)), false));
                    closing = true;
                    break;
                }
                Ok(None) => break,
                Err(err) => {
                    let msg = format!("protocol error: {}; closing the connection", err.details());
                    pending.push_back(ready(redis_err(msg), false));
                    closing = true;
                    break;
                }
            };
            let (reply, blocks, quits) = this.dispatch(frame);
            pending.push_back(reply);
            blocked |= blocks;
            closing |= quits;
        }
        if pending.is_empty() {
            if !out.is_empty() && wr.write_all_buf(&mut out).await.is_err() {
                return;
            }
            if closing {
                let _ = wr.shutdown().await;
                return;
            }
        }
        if input.capacity() - input.len() < READ_ROOM / 4 {
            input.reserve(READ_ROOM);
        }
        tokio::select! {
            // Reading stops while the connection is at its limits (backpressure).
            read = rd.read_buf(&mut input), if !closing && pending.len() < MAX_IN_FLIGHT && input.len() <= max => match read {
                Ok(0) | Err(_) => closing = true,
                Ok(_) => {}
            },
            Some(done) = pending.next(), if !pending.is_empty() => {
                let mut done = Some(done);
                // Every reply that is ready goes out in one write.
                while let Some((value, resp3, unblocks)) = done.take() {
                    value.encode(resp3, &mut out);
                    blocked &= !unblocks;
                    if out.len() < WRITE_AT {
                        done = pending.next().now_or_never().flatten();
                    }
                }
                if wr.write_all_buf(&mut out).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn ready(value: Value, resp3: bool) -> Pending {
    Box::pin(async move { (value, resp3, false) })
}

/// Counts a command by its call and result, and how long it took.
fn record(call: &'static str, value: &Value, started: Instant) {
    crate::metrics::api_request("resp", call, value.code(), started.elapsed());
}

/// A reply that is not one of shardlock's own codes (`ERR`, as Redis says).
fn redis_err(message: impl Into<String>) -> Value {
    Value::Error { code: "ERR", message: message.into() }
}

impl Connection {
    /// The reply to one request frame (a future, in order), whether it
    /// blocks the connection until it answers, and whether it ends it.
    fn dispatch(&mut self, frame: BytesFrame) -> (Pending, bool, bool) {
        let request = match Request::parse(frame) {
            Ok(request) => request,
            Err(Refused::Unknown(name)) => {
                return (ready(redis_err(format!("unknown command '{name}'")), self.resp3), false, false)
            }
            Err(Refused::Bad(err)) => return (ready(Value::error(&err), self.resp3), false, false),
        };
        if !self.authed && !matches!(request, Request::Auth { .. } | Request::Hello { .. } | Request::Quit) {
            let err = ApiError::new(ErrorCode::Unauthenticated, "authentication required: send AUTH <token> first");
            return (ready(Value::error(&err), self.resp3), false, false);
        }
        let quits = matches!(request, Request::Quit);
        let (call, started, resp3) = (request.call(), Instant::now(), self.resp3);
        match self.local(request) {
            Ok(value) => {
                record(call, &value, started);
                (ready(value, self.resp3), false, quits)
            }
            Err(work) => {
                let blocks = work.blocks;
                let svc = self.svc.clone();
                let reply = async move {
                    let value = work.run(&svc).await;
                    record(call, &value, started);
                    (value, resp3, blocks)
                };
                (Box::pin(reply), blocks, false)
            }
        }
    }

    /// Answers a command about the connection itself at once; hands a lock
    /// command back as work to run.
    fn local(&mut self, request: Request) -> Result<Value, Work> {
        let value = match request {
            Request::Ping(None) => Value::Status("PONG"),
            Request::Ping(Some(msg)) | Request::Echo(msg) => Value::Bulk(msg),
            Request::Hello { protocol, token } => self.hello(protocol.as_deref(), token.as_deref()),
            Request::Auth { token } => self.auth(&token),
            Request::ClientAck | Request::Quit => Value::ok(),
            Request::ClientId => Value::Int(self.conn as i64),
            Request::Select(db) if db.as_ref() == b"0" => Value::ok(),
            Request::Select(_) => redis_err("DB index is out of range: shardlock has database 0 only"),
            Request::Command => Value::Array(Vec::new()),
            Request::Session => match self.svc.sessions().for_connection(self.conn) {
                Ok(id) => {
                    self.session = Some(id);
                    Value::ok()
                }
                Err(err) => Value::error(&err),
            },
            Request::Lock(mut asked) => {
                asked.session = self.session.map(|id| InSession { id, keep_alive: asked.ttl_ms.is_none() });
                let blocks = asked.wait_ms.is_some_and(|w| w > 0);
                return Err(Work { request: Request::Lock(asked), blocks });
            }
            request => return Err(Work { request, blocks: false }),
        };
        Ok(value)
    }

    fn hello(&mut self, protocol: Option<&[u8]>, token: Option<&[u8]>) -> Value {
        let resp3 = match protocol {
            None => self.resp3,
            Some(b"2") => false,
            Some(b"3") => true,
            Some(_) => {
                return Value::Error { code: "NOPROTO", message: "unsupported protocol version: use 2 or 3".into() }
            }
        };
        if let Some(token) = token {
            let authed = self.auth(token);
            if matches!(authed, Value::Error { .. }) {
                return authed;
            }
        }
        if !self.authed {
            let err = ApiError::new(ErrorCode::Unauthenticated, "authentication required: HELLO 3 AUTH <user> <token>");
            return Value::error(&err);
        }
        self.resp3 = resp3;
        Value::Map(vec![
            ("server", Value::text("shardlock")),
            ("version", Value::text(env!("CARGO_PKG_VERSION"))),
            ("proto", Value::Int(if resp3 { 3 } else { 2 })),
            ("id", Value::Int(self.conn as i64)),
            ("mode", Value::text("cluster")),
            ("role", Value::text("master")),
            ("modules", Value::Array(Vec::new())),
        ])
    }

    fn auth(&mut self, presented: &[u8]) -> Value {
        match &self.token {
            None => Value::ok(),
            Some(token) if crate::api::auth::token_matches(presented, token) => {
                self.authed = true;
                Value::ok()
            }
            Some(_) => Value::error(&ApiError::new(ErrorCode::Unauthenticated, "invalid credentials")),
        }
    }
}

/// A lock command to run against the service.
struct Work {
    request: Request,
    /// It waits (a blocking `LOCK`): the connection runs nothing after it
    /// until it answers.
    blocks: bool,
}

impl Work {
    async fn run(self, svc: &Arc<LockService>) -> Value {
        let answer = match self.request {
            Request::Lock(asked) => asked.run(svc).await.map(granted),
            Request::Unlock(release) => release.run(svc).await.map(|_| Value::ok()),
            Request::Refresh(refresh) => refresh.run(svc).await.map(|r| {
                let g = r.grant;
                Value::Map(vec![
                    ("key", Value::text(g.key.as_str())),
                    ("fencing_token", Value::Int(g.token as i64)),
                    ("permits", Value::Int(g.permits.into())),
                    ("ttl_ms", Value::Int(g.ttl_ms as i64)),
                ])
            }),
            Request::SetValue(set) => set.run(svc).await.map(|d| hold(&d.grant)),
            Request::Downgrade(downgrade) => downgrade.run(svc).await.map(|d| hold(&d.grant)),
            Request::Describe(describe) => describe.run(svc).await.map(|d| d.lock.map_or(Value::Nil, lock_view)),
            Request::Validate(validate) => validate.run(svc).await.map(|f| Value::Int(f.holder.is_some().into())),
            Request::List(list) => list.run(svc).await.map(|l| {
                let rows = l.locks.into_iter().map(|r| {
                    Value::Map(vec![
                        ("name", Value::text(r.name)),
                        ("size", Value::Int(r.size.into())),
                        ("held", Value::Int(r.held.into())),
                        ("holders", Value::Int(r.holders.into())),
                        ("waiters", Value::Int(r.waiters.into())),
                    ])
                });
                Value::Array(rows.collect())
            }),
            other => {
                Err(ApiError::new(ErrorCode::Internal, format!("internal error: {} reached the service", other.call())))
            }
        };
        answer.unwrap_or_else(|err| Value::error(&err))
    }
}

fn granted(g: Granted) -> Value {
    Value::Map(vec![
        ("key", Value::text(g.grant.key.as_str())),
        ("fencing_token", Value::Int(g.grant.token as i64)),
        ("permits", Value::Int(g.grant.permits.into())),
        ("ttl_ms", Value::Int(g.grant.ttl_ms as i64)),
        ("size", Value::Int(g.size.into())),
        ("mode", Value::Status(g.grant.mode.as_str())),
        ("value", held_value(g.grant.value.as_ref())),
    ])
}

/// A hold after SETVALUE or DOWNGRADE.
fn hold(g: &Grant) -> Value {
    Value::Map(vec![
        ("key", Value::text(g.key.as_str())),
        ("fencing_token", Value::Int(g.token as i64)),
        ("mode", Value::Status(g.mode.as_str())),
        ("value", held_value(g.value.as_ref())),
    ])
}

fn held_value(value: Option<&crate::lock::Value>) -> Value {
    value.map_or(Value::Nil, |v| Value::Bulk(bytes::Bytes::copy_from_slice(v.as_bytes())))
}

fn lock_view(v: LockView) -> Value {
    let holders = v.holders.into_iter().map(|h| {
        Value::Map(vec![
            ("key", Value::text(h.key.as_str())),
            ("permits", Value::Int(h.permits.into())),
            ("fencing_token", Value::Int(h.token as i64)),
            ("ttl_ms", Value::Int(h.ttl_ms as i64)),
            ("remaining_ttl_ms", Value::Int(h.remaining_ttl_ms as i64)),
            ("mode", Value::Status(h.mode.as_str())),
            ("value", held_value(h.value.as_ref())),
        ])
    });
    let waiters = v.waiters.into_iter().map(|w| {
        Value::Map(vec![
            ("key", Value::text(w.key.as_str())),
            ("permits", Value::Int(w.permits.into())),
            ("position", Value::Int(w.position.into())),
            ("wait_ms", Value::Int(w.wait_ms as i64)),
            ("mode", Value::Status(w.mode.as_str())),
        ])
    });
    Value::Map(vec![
        ("name", Value::text(v.name)),
        ("size", Value::Int(v.size.into())),
        ("held", Value::Int(v.held.into())),
        ("holders", Value::Array(holders.collect())),
        ("waiters", Value::Array(waiters.collect())),
    ])
}
