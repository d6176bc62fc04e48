//! Raw wire clients for the bad-input tests: gRPC calls with any body,
//! HTTP/1 requests of any bytes, and hand-written HTTP/2 frames.
//!
//! Invariants: every call is bounded by [`CALL_TIMEOUT`] and panics when it
//! runs out, so a server that hangs fails the test instead of stalling it;
//! nothing here retries, so what a test sees is what the node answered.

#![allow(dead_code)]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use axum::body::HttpBody;
use axum::http::{HeaderMap, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use tower::ServiceExt;

/// Longest any single raw call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// What a gRPC call came back with.
#[derive(Debug)]
pub struct GrpcReply {
    pub http: u16,
    /// The grpc-status (from the headers of a trailers-only answer, else the trailers).
    pub status: Option<tonic::Status>,
    pub body: Vec<u8>,
}

impl GrpcReply {
    pub fn code(&self) -> Option<tonic::Code> {
        self.status.as_ref().map(tonic::Status::code)
    }

    /// The `shardlock-code` metadata of a failed call.
    pub fn shardlock_code(&self) -> Option<String> {
        let md = self.status.as_ref()?.metadata().get(shardlock::error::CODE_METADATA)?;
        md.to_str().ok().map(str::to_owned)
    }
}

/// One gRPC frame: the 5-byte header (uncompressed) and `message`.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// A plain channel to `addr` (one HTTP/2 connection, no retries).
pub async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect a raw channel")
}

/// POSTs `body` (the whole gRPC request body, frame headers included) to `path`.
pub async fn grpc_call(channel: &Channel, path: &str, body: Vec<u8>) -> GrpcReply {
    grpc_call_body(channel, path, axum::body::Body::from(body)).await
}

/// Like [`grpc_call`], with a body that may arrive slowly (or never end).
pub async fn grpc_call_body(channel: &Channel, path: &str, body: axum::body::Body) -> GrpcReply {
    let call = async {
        let req = Request::post(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(body))
            .expect("request");
        let resp = channel.clone().oneshot(req).await.unwrap_or_else(|e| panic!("{path}: the call failed: {e}"));
        let (parts, mut body) = resp.into_parts();
        let (mut data, mut trailers) = (Vec::new(), None::<HeaderMap>);
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let frame = frame.unwrap_or_else(|e| panic!("{path}: the answer broke off: {e}"));
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        let status = tonic::Status::from_header_map(&parts.headers)
            .or_else(|| trailers.and_then(|t| tonic::Status::from_header_map(&t)));
        GrpcReply { http: parts.status.as_u16(), status, body: data }
    };
    tokio::time::timeout(CALL_TIMEOUT, call).await.unwrap_or_else(|_| panic!("{path}: no answer in {CALL_TIMEOUT:?}"))
}

/// Sends `request` (raw bytes) on a fresh connection and reads the answer to
/// the end; returns the HTTP status (0 if none) and the body.
pub async fn http1(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect for http");
        // The node may answer (and close) before it has read everything.
        let _ = stream.write_all(request).await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(CALL_TIMEOUT, exchange).await.expect("an http answer in time");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, raw[split..].to_vec())
}

/// A `POST path` request with `body`, and `content_type` unless `None`.
pub fn post(addr: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Waits until the node closes `stream` (EOF or reset); panics after `within`.
pub async fn closed_by_peer(stream: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let read_until_closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read_until_closed).await.expect("the node closed the connection in time");
}

// ---- HTTP/2 frames by hand ---------------------------------------------

/// One HTTP/2 connection spoken frame by frame, to do what a well-behaved
/// client library never does (open more streams than the server allows).
pub struct H2 {
    stream: TcpStream,
}

/// An HTTP/2 frame: (type, flags, stream id, payload).
pub type Frame = (u8, u8, u32, Vec<u8>);

pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const REFUSED_STREAM: u32 = 0x7;

fn hpack_int(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// Header fields as HPACK "literal without indexing, new name", no Huffman.
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        hpack_int(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

impl H2 {
    /// Connects, sends the preface and empty SETTINGS.
    pub async fn connect(addr: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect for h2");
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("preface");
        let mut h2 = Self { stream };
        h2.send(SETTINGS, 0, 0, &[]).await;
        h2
    }

    pub async fn send(&mut self, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        self.stream.write_all(&out).await.expect("send an h2 frame");
    }

    /// Opens stream `id` with a gRPC request to `path`, its body left open.
    pub async fn open_grpc_stream(&mut self, id: u32, path: &str) {
        let block = hpack(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]);
        const END_HEADERS: u8 = 0x4;
        self.send(0x1, END_HEADERS, id, &block).await;
    }

    /// The next frame from the node (SETTINGS are acknowledged on the way),
    /// or `None` when the connection ends.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        self.stream.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await.ok()?;
        if kind == SETTINGS && flags & 0x1 == 0 {
            self.send(SETTINGS, 0x1, 0, &[]).await;
        }
        Some((kind, flags, id, payload))
    }
}
