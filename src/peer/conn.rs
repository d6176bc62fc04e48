//! One peer connection: every frame out goes through one writer task, every
//! frame in through one reader task.
//!
//! Senders append their frame to the connection's out-buffer and wake the
//! writer, which writes everything queued in one write: frames of many
//! groups and calls share a system call when they queue together, with no
//! task, timer or channel per message. The reader answers calls from the
//! replies it reads, and on the serving side runs each request's handler
//! inside its own task (a set of futures it polls), writing the answer when
//! the handler finishes, in whatever order handlers finish.
//!
//! Invariants: every call is answered exactly once: its reply, a timeout
//! (found by the reader's sweep, one per `SWEEP`, only while calls are
//! pending), or the connection's death; once closed a connection stays
//! closed and refuses new frames; a protocol error (a bad frame) closes it;
//! a connection that answered nothing for `SILENT_LIMIT` while calls timed
//! out on it is closed, so the link dials again (a peer gone without a FIN,
//! or a partition that ate the connection). No lock is held across an
//! `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

use super::frame::{self, Frame, Kind, Method};

/// How often pending calls are checked against their deadlines.
const SWEEP: Duration = Duration::from_millis(20);
/// A connection silent this long while calls time out on it is closed.
const SILENT_LIMIT: Duration = Duration::from_secs(3);

/// Why a call got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no answer within the deadline")]
    Timeout,
    #[error("peer unreachable: {0}")]
    Unreachable(String),
}

/// The body of a handler's answer: `Ok` is sent as a reply, `Err` as a refusal.
pub type Answer = Result<Vec<u8>, Vec<u8>>;

/// Serves the requests a connection receives.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, method: Method, group: u32, body: Bytes) -> futures::future::BoxFuture<'static, Answer>;
}

struct Call {
    answer: oneshot::Sender<Result<Frame, CallError>>,
    deadline: Instant,
}

#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    /// Why the connection closed, once it has.
    closed: Option<String>,
}

pub struct Conn {
    out: Mutex<Out>,
    writable: Notify,
    /// Tells the reader the connection closed (a stored permit if it is busy).
    closing: Notify,
    /// Tells the reader a call is pending again, so it sweeps deadlines.
    sweeping: Notify,
    calls: Mutex<HashMap<u64, Call>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// When a frame last arrived, in ms since `epoch`.
    heard_ms: AtomicU64,
    epoch: Instant,
    max_frame: usize,
}

impl Conn {
    /// Starts the reader and writer of a connection over `read` / `write`;
    /// a `handler` serves the requests that arrive (the accepting side).
    pub fn start<R, W>(read: R, write: W, max_frame: usize, handler: Option<Arc<dyn Handler>>) -> Arc<Self>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(Self {
            out: Mutex::default(),
            writable: Notify::new(),
            closing: Notify::new(),
            sweeping: Notify::new(),
            calls: Mutex::default(),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            heard_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            max_frame,
        });
        tokio::spawn(write_loop(conn.clone(), write));
        tokio::spawn(read_loop(conn.clone(), read, handler));
        conn
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calls(&self) -> MutexGuard<'_, HashMap<u64, Call>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its answer until `ttl` passes.
    pub async fn call(&self, method: Method, group: u32, body: &[u8], ttl: Duration) -> Result<Frame, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut calls = self.calls();
            calls.insert(id, Call { answer: tx, deadline: Instant::now() + ttl });
            calls.len() == 1
        };
        if first {
            // The reader sweeps deadlines only while calls are pending.
            self.sweeping.notify_one();
        }
        if let Err(why) = self.send(Kind::Request, id, method, group, body) {
            self.calls().remove(&id);
            return Err(CallError::Unreachable(why));
        }
        let answer = rx.await.unwrap_or_else(|_| Err(CallError::Unreachable("the connection closed".into())));
        if answer.is_err() {
            self.calls().remove(&id);
        }
        answer
    }

    /// Queues one frame for the writer.
    fn send(&self, kind: Kind, id: u64, method: Method, group: u32, body: &[u8]) -> Result<(), String> {
        let mut out = self.out();
        if let Some(why) = &out.closed {
            return Err(why.clone());
        }
        let wake = out.bytes.is_empty();
        frame::put(&mut out.bytes, kind, id, method, group, body);
        drop(out);
        if wake {
            self.writable.notify_one();
        }
        Ok(())
    }

    /// Closes the connection: pending and future calls fail with `why`.
    pub fn close(&self, why: &str) {
        self.out().closed.get_or_insert_with(|| why.to_owned());
        self.closed.store(true, Ordering::Release);
        self.writable.notify_one();
        self.closing.notify_one();
        let calls: Vec<Call> = self.calls().drain().map(|(_, c)| c).collect();
        for call in calls {
            let _ = call.answer.send(Err(CallError::Unreachable(why.to_owned())));
        }
    }

    fn heard(&self) {
        self.heard_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn has_calls(&self) -> bool {
        !self.calls().is_empty()
    }

    /// Fails the calls whose deadline passed; closes a silent connection.
    fn sweep(&self, now: Instant) {
        let expired: Vec<Call> = {
            let mut calls = self.calls();
            let ids: Vec<u64> = calls.iter().filter(|(_, c)| c.deadline <= now).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| calls.remove(id)).collect()
        };
        if expired.is_empty() {
            return;
        }
        for call in expired {
            let _ = call.answer.send(Err(CallError::Timeout));
        }
        let silent = self.epoch.elapsed().saturating_sub(Duration::from_millis(self.heard_ms.load(Ordering::Relaxed)));
        if silent >= SILENT_LIMIT {
            self.close("the peer has answered nothing for a while");
        }
    }

    /// Hands an arrived reply to its call (a late one finds none: dropped).
    fn answer(&self, frame: Frame) {
        if let Some(call) = self.calls().remove(&frame.id) {
            let _ = call.answer.send(Ok(frame));
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(conn: Arc<Conn>, mut write: W) {
    let mut buf = Vec::new();
    loop {
        {
            let mut out = conn.out();
            if out.closed.is_some() {
                break;
            }
            std::mem::swap(&mut out.bytes, &mut buf);
        }
        if buf.is_empty() {
            conn.writable.notified().await;
            continue;
        }
        if let Err(err) = write_all(&mut write, &buf).await {
            conn.close(&format!("write failed: {err}"));
            break;
        }
        buf.clear();
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
    }
    let _ = write.shutdown().await;
}

async fn write_all<W: AsyncWrite + Unpin>(write: &mut W, buf: &[u8]) -> std::io::Result<()> {
    write.write_all(buf).await?;
    write.flush().await
}

type Served = futures::future::BoxFuture<'static, (u64, Method, u32, Answer)>;

async fn read_loop<R: AsyncRead + Unpin>(conn: Arc<Conn>, mut read: R, handler: Option<Arc<dyn Handler>>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut serving: FuturesUnordered<Served> = FuturesUnordered::new();
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = loop {
        loop {
            match frame::take(&mut buf, conn.max_frame) {
                Ok(Some(frame)) => {
                    conn.heard();
                    if let Err(why) = dispatch(&conn, frame, handler.as_ref(), &mut serving) {
                        conn.close(why);
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    conn.close(&err.to_string());
                    return;
                }
            }
        }
        tokio::select! {
            read = read.read_buf(&mut buf) => match read {
                Ok(0) => break "the peer closed the connection".to_owned(),
                Ok(_) => {}
                Err(err) => break format!("read failed: {err}"),
            },
            Some((id, method, group, answer)) = serving.next(), if !serving.is_empty() => {
                let (kind, body) = match &answer {
                    Ok(body) => (Kind::Reply, body),
                    Err(body) => (Kind::Refusal, body),
                };
                if conn.send(kind, id, method, group, body).is_err() {
                    return;
                }
            }
            _ = sweep.tick(), if conn.has_calls() => conn.sweep(Instant::now()),
            _ = conn.closing.notified() => return,
            _ = conn.sweeping.notified() => {}
        }
    };
    conn.close(&why);
}

fn dispatch(
    conn: &Conn,
    frame: Frame,
    handler: Option<&Arc<dyn Handler>>,
    serving: &mut FuturesUnordered<Served>,
) -> Result<(), &'static str> {
    match (frame.kind, handler) {
        (Kind::Request, Some(handler)) => {
            let (id, method, group) = (frame.id, frame.method, frame.group);
            let fut = handler.handle(method, group, frame.body);
            serving.push(Box::pin(async move { (id, method, group, fut.await) }));
            Ok(())
        }
        (Kind::Request, None) => Err("a request arrived on a connection that serves none"),
        (Kind::Reply | Kind::Refusal, _) => {
            conn.answer(frame);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes the body back, refusing group 13 and answering group 7 late.
    struct Echo;

    impl Handler for Echo {
        fn handle(&self, _m: Method, group: u32, body: Bytes) -> futures::future::BoxFuture<'static, Answer> {
            Box::pin(async move {
                if group == 7 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if group == 13 {
                    return Err(b"unlucky".to_vec());
                }
                Ok(body.to_vec())
            })
        }
    }

    fn pair() -> (Arc<Conn>, Arc<Conn>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let client = Conn::start(ar, aw, 1 << 20, None);
        let server = Conn::start(br, bw, 1 << 20, Some(Arc::new(Echo)));
        (client, server)
    }

    #[tokio::test]
    async fn calls_get_their_own_answers_refusals_and_timeouts() {
        let (client, _server) = pair();
        let calls = (0..200u32).map(|g| {
            let client = client.clone();
            async move { (g, client.call(Method::Propose, g, &g.to_le_bytes(), Duration::from_secs(5)).await) }
        });
        for (g, answer) in futures::future::join_all(calls).await {
            let frame = answer.unwrap();
            let want =
                if g == 13 { (Kind::Refusal, b"unlucky".to_vec()) } else { (Kind::Reply, g.to_le_bytes().to_vec()) };
            assert_eq!((frame.kind, frame.body.to_vec()), want, "call of group {g}");
        }
        let late = client.call(Method::Read, 7, b"x", Duration::from_millis(50)).await;
        assert_eq!(late, Err(CallError::Timeout));
        assert!(client.calls().is_empty(), "nothing is left pending");
    }

    #[tokio::test]
    async fn a_closed_connection_fails_pending_and_new_calls() {
        let (client, server) = pair();
        let pending = {
            let client = client.clone();
            tokio::spawn(async move { client.call(Method::Read, 7, b"x", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        server.close("going away");
        assert!(matches!(pending.await.unwrap(), Err(CallError::Unreachable(_))));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !client.is_closed() {
            assert!(Instant::now() < deadline, "the client side saw the close");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let after = client.call(Method::Read, 1, b"x", Duration::from_secs(1)).await;
        assert!(matches!(after, Err(CallError::Unreachable(_))));
    }
}
