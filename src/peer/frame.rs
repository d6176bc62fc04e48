//! Frames of the peer protocol: the unit a peer connection carries.
//!
//! ```text
//! u32 length  (little endian: the bytes that follow, header and body)
//! u8  kind    (request, reply, refusal)
//! u64 call id (chosen by the caller, echoed by the reply)
//! u8  method
//! u32 group
//! body        (length - 14 bytes)
//! ```
//!
//! Invariants: a frame's length covers exactly its header and body, so a
//! reader always knows where the next frame starts; a length above the
//! reader's limit, an unknown kind or an unknown method is a protocol error
//! that closes the connection (the stream can no longer be trusted); the
//! body is never copied on decode (it is a slice of the read buffer).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the header after the length field.
pub const HEADER: usize = 1 + 8 + 1 + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Request = 1,
    /// The call's answer.
    Reply = 2,
    /// The call was refused: the body says why.
    Refusal = 3,
}

/// What a request asks of the receiving node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method {
    AppendEntries = 1,
    Vote = 2,
    PreVote = 3,
    Snapshot = 4,
    TransferLeader = 5,
    /// Node liveness (no group).
    Ping = 6,
    /// A lock command forwarded to the group's leader.
    Propose = 7,
    /// A linearizable read forwarded to the group's leader.
    Read = 8,
    /// A membership change forwarded to the group's leader.
    Membership = 9,
    /// A node says whether it is draining (no group).
    Draining = 10,
    /// A blocking acquire waited out on a node holding the group.
    Acquire = 11,
    /// A watch's events of a group, read from a node holding it (a relay).
    WatchRead = 12,
}

impl Method {
    pub const ALL: [Method; 12] = [
        Method::AppendEntries,
        Method::Vote,
        Method::PreVote,
        Method::Snapshot,
        Method::TransferLeader,
        Method::Ping,
        Method::Propose,
        Method::Read,
        Method::Membership,
        Method::Draining,
        Method::Acquire,
        Method::WatchRead,
    ];

    /// The metric label of the method.
    pub fn label(self) -> &'static str {
        match self {
            Method::AppendEntries => "append_entries",
            Method::Vote => "vote",
            Method::PreVote => "pre_vote",
            Method::Snapshot => "snapshot",
            Method::TransferLeader => "transfer_leader",
            Method::Ping => "ping",
            Method::Propose => "propose",
            Method::Read => "read",
            Method::Membership => "membership",
            Method::Draining => "draining",
            Method::Acquire => "acquire",
            Method::WatchRead => "watch_read",
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| *m as u8 == v)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub id: u64,
    pub method: Method,
    pub group: u32,
    pub body: Bytes,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("peer frame of {len} bytes is over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("peer frame of {len} bytes is shorter than its header")]
    TooShort { len: usize },
    #[error("peer frame has unknown kind {0}")]
    Kind(u8),
    #[error("peer frame has unknown method {0}")]
    Method(u8),
}

/// Appends one frame to `out`.
pub fn put(out: &mut Vec<u8>, kind: Kind, id: u64, method: Method, group: u32, body: &[u8]) {
    out.reserve(4 + HEADER + body.len());
    out.put_u32_le((HEADER + body.len()) as u32);
    out.put_u8(kind as u8);
    out.put_u64_le(id);
    out.put_u8(method as u8);
    out.put_u32_le(group);
    out.put_slice(body);
}

/// Takes one whole frame off the front of `buf`, if `buf` holds one.
pub fn take(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    if len < HEADER {
        return Err(FrameError::TooShort { len });
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let mut frame = buf.split_to(len);
    let kind = match frame.get_u8() {
        1 => Kind::Request,
        2 => Kind::Reply,
        3 => Kind::Refusal,
        other => return Err(FrameError::Kind(other)),
    };
    let id = frame.get_u64_le();
    let method = frame.get_u8();
    let method = Method::from_u8(method).ok_or(FrameError::Method(method))?;
    let group = frame.get_u32_le();
    Ok(Some(Frame { kind, id, method, group, body: frame.freeze() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut wire = Vec::new();
        put(&mut wire, Kind::Request, 7, Method::AppendEntries, 3, b"entries");
        put(&mut wire, Kind::Reply, 7, Method::AppendEntries, 3, b"");
        put(&mut wire, Kind::Refusal, u64::MAX, Method::Draining, 0, b"why");
        // Fed one byte at a time, the same three frames come out.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in &wire {
            buf.put_u8(*byte);
            while let Some(frame) = take(&mut buf, 1 << 20).unwrap() {
                got.push(frame);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            Frame {
                kind: Kind::Request,
                id: 7,
                method: Method::AppendEntries,
                group: 3,
                body: Bytes::from_static(b"entries")
            }
        );
        assert_eq!((got[1].kind, got[1].body.len()), (Kind::Reply, 0));
        assert_eq!(
            (got[2].kind, got[2].id, got[2].method, &got[2].body[..]),
            (Kind::Refusal, u64::MAX, Method::Draining, &b"why"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_protocol_errors() {
        let frame = |len: u32, kind: u8, method: u8| {
            let mut b = BytesMut::new();
            b.put_u32_le(len);
            b.put_u8(kind);
            b.put_u64_le(1);
            b.put_u8(method);
            b.put_u32_le(0);
            b
        };
        assert_eq!(take(&mut frame(100, 1, 1), 50), Err(FrameError::TooLong { len: 100, max: 50 }));
        assert_eq!(take(&mut frame(3, 1, 1), 50), Err(FrameError::TooShort { len: 3 }));
        assert_eq!(take(&mut frame(HEADER as u32, 9, 1), 50), Err(FrameError::Kind(9)));
        assert_eq!(take(&mut frame(HEADER as u32, 1, 99), 50), Err(FrameError::Method(99)));
        let mut partial = frame(HEADER as u32 + 10, 1, 1);
        assert_eq!(take(&mut partial, 50), Ok(None), "a frame not yet whole waits for more bytes");
    }
}
