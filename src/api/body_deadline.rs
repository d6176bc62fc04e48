//! A deadline on receiving a request's body.
//!
//! hyper bounds how long HTTP/1 request headers may take, but nothing bounds
//! the body: a client that sends its headers and then trickles or withholds
//! the body would hold its call (and its connection) forever. [`limit`]
//! wraps every request body so that it fails once `body_read_timeout_ms`
//! has passed since the request's headers arrived and the body has not
//! ended. A REST call then answers `400 INVALID_ARGUMENT` (the body cannot
//! be read), a gRPC call `INVALID_ARGUMENT` with `shardlock-code`.
//!
//! Invariants: the Session stream is exempt (its request stream lives as
//! long as the session; keepalives and the session TTL bound it); a body
//! that has ended is never failed; the error is a `tonic::Status`, which
//! tonic finds in the error's source chain and answers as is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, ErrorCode};

/// The one call whose request body is a long-lived stream.
const SESSION_PATH: &str = "/shardlock.v1.Lock/Session";

/// Whether the body of a request to `path` is bounded (all but a session's).
pub fn bounded(path: &str) -> bool {
    path != SESSION_PATH
}

/// The middleware: bounds the body of every request but a session's.
pub async fn limit(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    if !bounded(req.uri().path()) {
        return next.run(req).await;
    }
    let req = req.map(|inner| Body::new(Deadline::new(inner, timeout)));
    next.run(req).await
}

/// A body that fails once `timeout` has passed since it was made and it
/// has not ended.
pub struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    /// For the error message.
    timeout: Duration,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self { inner, sleep: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)), timeout }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(|e| tonic::Status::from_error(e.into())))),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let msg = format!(
                        "the request body did not arrive within {} ms of its headers: send the whole request at once",
                        self.timeout.as_millis()
                    );
                    Poll::Ready(Some(Err(ApiError::new(ErrorCode::InvalidArgument, msg).to_status())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// Echoes the body, or says why it could not be read.
    fn app() -> axum::Router {
        let echo = |body: Result<Bytes, axum::extract::rejection::BytesRejection>| async move {
            match body {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(err) => format!("refused: {}", err.body_text()),
            }
        };
        axum::Router::new()
            .route("/x", post(echo))
            .route(SESSION_PATH, post(|| async { "session" }))
            .layer(axum::middleware::from_fn_with_state(Duration::from_millis(50), limit))
    }

    async fn call(path: &str, body: Body) -> String {
        let resp = app().oneshot(Request::post(path).body(body).unwrap()).await.unwrap();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_stalled_body_fails_and_a_whole_one_passes() {
        assert_eq!(call("/x", Body::from("whole")).await, "whole");
        let first = Ok::<_, std::io::Error>(Bytes::from_static(b"part"));
        let stalled = futures::StreamExt::chain(futures::stream::iter([first]), futures::stream::pending());
        let answer = call("/x", Body::from_stream(stalled)).await;
        assert!(answer.starts_with("refused") && answer.contains("did not arrive within 50 ms"), "{answer}");
        let never = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        assert_eq!(call(SESSION_PATH, never).await, "session", "the session stream is exempt");
    }
}
