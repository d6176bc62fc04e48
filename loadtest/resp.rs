//! The RESP driver: one connection speaking the Redis protocol, through
//! redis-protocol's encoder and decoder, to shardlock's RESP surface or to
//! `redis-server`.
//!
//! The cycle is the same shape on both: take a lock with a key of the
//! client's own and a TTL, then release it if the key still holds it —
//! `LOCK name TTL ms KEY key` + `UNLOCK name key` on shardlock; Redis's
//! usual `SET name key NX PX ms` + a Lua compare-and-delete (`EVALSHA`) on
//! Redis.

use anyhow::{anyhow, bail};
use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Releases `KEYS[1]` if it holds `ARGV[1]` (the Redis lock recipe).
const UNLOCK_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

pub struct Resp {
    stream: TcpStream,
    input: BytesMut,
    output: BytesMut,
    /// The unlock script's SHA (Redis only).
    unlock_sha: Option<Bytes>,
}

impl Resp {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            input: BytesMut::with_capacity(4096),
            output: BytesMut::with_capacity(256),
            unlock_sha: None,
        })
    }

    /// A connection to `redis-server`, with the unlock script loaded.
    pub async fn redis(addr: &str) -> anyhow::Result<Self> {
        let mut conn = Self::connect(addr).await?;
        match conn.call(&[b"SCRIPT", b"LOAD", UNLOCK_SCRIPT.as_bytes()]).await? {
            BytesFrame::BulkString(sha) => conn.unlock_sha = Some(sha),
            other => bail!("SCRIPT LOAD answered {other:?}"),
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply; an error reply is an error.
    pub async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<BytesFrame> {
        let frame = BytesFrame::Array(args.iter().map(|a| BytesFrame::BulkString(Bytes::copy_from_slice(a))).collect());
        self.output.clear();
        extend_encode(&mut self.output, &frame, false)?;
        self.stream.write_all(&self.output).await?;
        loop {
            if let Some((reply, _, _)) = decode_bytes_mut(&mut self.input)? {
                return match reply {
                    BytesFrame::Error(e) => Err(anyhow!("{e}")),
                    other => Ok(other),
                };
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }

    /// shardlock: takes lock `name` (`size` permits of it when a
    /// semaphore) with `key`, waiting up to `wait_ms`; its fencing token.
    pub async fn lock(
        &mut self,
        name: &str,
        key: &str,
        ttl_ms: u64,
        wait_ms: u64,
        size: Option<u32>,
    ) -> anyhow::Result<u64> {
        let (ttl, wait) = (ttl_ms.to_string(), wait_ms.to_string());
        let mut args: Vec<&[u8]> = vec![b"LOCK", name.as_bytes(), b"TTL", ttl.as_bytes(), b"KEY", key.as_bytes()];
        let size = size.map(|s| s.to_string());
        if let Some(size) = &size {
            args.extend([&b"SIZE"[..], size.as_bytes()]);
        }
        if wait_ms > 0 {
            args.extend([&b"WAIT"[..], wait.as_bytes()]);
        }
        let BytesFrame::Array(fields) = self.call(&args).await? else { bail!("LOCK answered no grant") };
        let token = fields.chunks(2).find_map(|kv| match kv {
            [BytesFrame::BulkString(k), BytesFrame::Integer(v)] if &k[..] == b"fencing_token" => Some(*v as u64),
            _ => None,
        });
        token.ok_or_else(|| anyhow!("LOCK answered a grant without a fencing token"))
    }

    pub async fn unlock(&mut self, name: &str, key: &str) -> anyhow::Result<()> {
        self.call(&[b"UNLOCK", name.as_bytes(), key.as_bytes()]).await.map(drop)
    }

    /// shardlock: whether `token` is a live holder's of `name`.
    pub async fn validate(&mut self, name: &str, token: u64) -> anyhow::Result<bool> {
        match self.call(&[b"VALIDATE", name.as_bytes(), token.to_string().as_bytes()]).await? {
            BytesFrame::Integer(v) => Ok(v == 1),
            other => bail!("VALIDATE answered {other:?}"),
        }
    }

    /// Redis: `SET name key NX PX ttl`; false when someone else holds it.
    pub async fn set_nx(&mut self, name: &str, key: &str, ttl_ms: u64) -> anyhow::Result<bool> {
        let ttl = ttl_ms.to_string();
        let reply = self.call(&[b"SET", name.as_bytes(), key.as_bytes(), b"NX", b"PX", ttl.as_bytes()]).await?;
        Ok(matches!(reply, BytesFrame::SimpleString(_)))
    }

    /// Redis: deletes `name` if `key` holds it (the unlock script).
    pub async fn compare_and_delete(&mut self, name: &str, key: &str) -> anyhow::Result<()> {
        let sha = self.unlock_sha.clone().ok_or_else(|| anyhow!("not a redis connection"))?;
        self.call(&[b"EVALSHA", &sha, b"1", name.as_bytes(), key.as_bytes()]).await.map(drop)
    }
}
