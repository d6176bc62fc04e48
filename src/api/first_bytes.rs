//! A deadline on the first bytes of a client connection.
//!
//! The client port serves HTTP/1 and HTTP/2 on one listener; hyper-util's
//! `auto` builder reads up to the 24 bytes of the HTTP/2 preface to tell
//! which one a client speaks, and waits for them without any timeout. A
//! client that connects and sends nothing (or a few bytes of the preface)
//! would hold its connection forever. [`FirstBytes`] wraps the stream and
//! fails its reads once the deadline passes while the version is undecided.
//!
//! Invariants: the deadline applies only until the version is decided —
//! 24 bytes read, or a byte that departs from the HTTP/2 preface (then the
//! client speaks HTTP/1, whose header read timeout takes over); after that
//! the wrapper passes every call straight through; writes are never limited.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The preface every HTTP/2 client sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct FirstBytes<S> {
    inner: S,
    /// Set while the HTTP version is undecided; `None` once it is.
    deadline: Option<Pin<Box<Sleep>>>,
    /// How many bytes of the preface the client has sent so far.
    seen: usize,
}

impl<S> FirstBytes<S> {
    pub fn new(inner: S, deadline: Instant) -> Self {
        Self { inner, deadline: Some(Box::pin(tokio::time::sleep_until(deadline))), seen: 0 }
    }

    /// Notes bytes the client sent; ends the deadline once they decide the version.
    fn saw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.seen >= H2_PREFACE.len() || H2_PREFACE[self.seen] != b {
                self.deadline = None;
                return;
            }
            self.seen += 1;
        }
        if self.seen >= H2_PREFACE.len() {
            self.deadline = None;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    this.saw(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no request before header_read_timeout_ms",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn read_all_after(sent: &[u8]) -> io::Result<Vec<u8>> {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(sent).await.unwrap();
        let mut wrapped = FirstBytes::new(server, Instant::now() + Duration::from_millis(100));
        let mut got = vec![0; sent.len()];
        wrapped.read_exact(&mut got).await?;
        // The client stalls: the next read waits for more.
        let mut more = [0u8; 1];
        let stalled = tokio::time::timeout(Duration::from_millis(400), wrapped.read(&mut more)).await;
        match stalled {
            Ok(Err(err)) => Err(err),
            _ => Ok(got),
        }
    }

    #[tokio::test]
    async fn a_client_that_stalls_before_choosing_a_version_times_out() {
        for sent in [&b""[..], b"PRI * HTTP"] {
            let err = read_all_after(sent).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{sent:?}");
        }
    }

    proptest::proptest! {
        /// However the first bytes arrive, in one read or many, the deadline
        /// stays exactly while they are a proper prefix of the HTTP/2 preface.
        #[test]
        fn the_deadline_lasts_exactly_while_the_version_is_undecided(
            keep in 0..=24usize,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
            reads in proptest::collection::vec(1..6usize, 0..12),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let _inside = runtime.enter();
            let mut sent = H2_PREFACE[..keep].to_vec();
            sent.extend(tail);
            let mut wrapped = FirstBytes::new((), Instant::now() + Duration::from_secs(1));
            let mut rest = &sent[..];
            for n in reads.into_iter().chain([usize::MAX]) {
                let (read, after) = rest.split_at(n.min(rest.len()));
                if wrapped.deadline.is_some() {
                    wrapped.saw(read);
                }
                rest = after;
            }
            let undecided = sent.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&sent);
            proptest::prop_assert_eq!(wrapped.deadline.is_some(), undecided, "{:?}", sent);
        }
    }

    #[tokio::test]
    async fn a_decided_version_lifts_the_deadline() {
        for sent in [H2_PREFACE, b"POST /v1/lock/acquire"] {
            assert_eq!(read_all_after(sent).await.unwrap(), sent);
        }
    }
}
