//! RESP, the Redis protocol, on the client port, checked with real Redis
//! clients: `redis-py` (PyPI) and `redis-cli` (Debian's `redis-tools`),
//! both installed by `make test`.

use std::time::Duration;

use crate::fixtures::harness::Cluster;

const TOKEN: &str = "resp-token-0123456789abcdef";

/// Runs `redis-cli` against `addr` with `args`; returns its output.
async fn redis_cli(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let run = tokio::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port, "--no-auth-warning", "-a", TOKEN])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("redis-cli finished in time")
        .expect("redis-cli runs (make test installs redis-tools)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn redis_py_locks_waits_pipelines_and_holds_sessions() {
    let cluster = Cluster::start_with(3, 8, &format!("[auth]\ntoken = \"{TOKEN}\"\n")).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resp_client.py");
    let run =
        tokio::process::Command::new("python3").arg(script).arg(cluster.addr(2)).arg(TOKEN).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the redis-py script finished in time")
        .expect("python3 runs (make test installs redis-py)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("OK"), "redis-py failed:\n{stdout}\n{stderr}");
}

#[tokio::test]
async fn redis_cli_speaks_to_any_node() {
    let cluster = Cluster::start_with(3, 8, &format!("[auth]\ntoken = \"{TOKEN}\"\n")).await;
    let (one, three) = (cluster.addr(1), cluster.addr(3));
    assert_eq!(redis_cli(&one, &["PING"]).await.trim(), "PONG");

    // A grant through node 1 (a flat array of field, value in RESP2) ...
    let grant = redis_cli(&one, &["LOCK", "cli/orders/42", "TTL", "30000", "KEY", "cli-key-1"]).await;
    let lines: Vec<&str> = grant.lines().collect();
    assert_eq!(&lines[..2], &["key", "cli-key-1"], "{grant}");
    assert!(lines.contains(&"fencing_token"), "{grant}");
    // ... refused through node 3 with the shardlock code first ...
    let busy = redis_cli(&three, &["LOCK", "cli/orders/42"]).await;
    assert!(busy.contains("LOCK_BUSY"), "{busy}");
    // ... described as a map in RESP3, and released.
    let described = redis_cli(&three, &["-3", "DESCRIBE", "cli/orders/42"]).await;
    assert!(described.contains("holders") && described.contains("cli-key-1"), "{described}");
    assert_eq!(redis_cli(&three, &["UNLOCK", "cli/orders/42", "cli-key-1"]).await.trim(), "OK");
    assert!(redis_cli(&one, &["GET", "x"]).await.contains("unknown command"));
}

/// One RESP frame of `args`, as a client sends it.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

#[tokio::test]
async fn a_pipeline_is_applied_in_the_order_it_was_sent() {
    use redis_protocol::resp2::types::OwnedFrame;
    use tokio::io::AsyncWriteExt;

    // One group, so every command below queues behind the same batches in
    // flight. LOCK i takes the lock UNLOCK i-3 freed and UNLOCK i frees it
    // for LOCK i+3: a command applied before one it follows on the same
    // name answers LOCK_BUSY or NOT_HOLDER.
    let cluster = Cluster::start(1, 1).await;
    const ROUNDS: usize = 150;
    let mut bytes = Vec::new();
    for i in 0..ROUNDS {
        let (name, key) = (format!("pipe/{}", i % 3), format!("k{i}"));
        bytes.extend(command(&["LOCK", &name, "KEY", &key, "TTL", "60000"]));
        bytes.extend(command(&["UNLOCK", &name, &key]));
    }
    let mut stream = tokio::net::TcpStream::connect(cluster.addr(1)).await.expect("connect");
    stream.write_all(&bytes).await.expect("send the pipeline");

    let mut buf = Vec::new();
    let read_all = read_replies(&mut stream, &mut buf, 2 * ROUNDS);
    let replies = tokio::time::timeout(Duration::from_secs(60), read_all).await.expect("every reply came in time");
    for (i, pair) in replies.chunks(2).enumerate() {
        let OwnedFrame::Array(fields) = &pair[0] else { panic!("LOCK {i}: not a grant: {:?}", pair[0]) };
        assert_eq!(fields.get(1), Some(&OwnedFrame::BulkString(format!("k{i}").into_bytes())), "LOCK {i}");
        assert_eq!(pair[1], OwnedFrame::SimpleString(b"OK".to_vec()), "UNLOCK {i}");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_up_no_one_else() {
    use tokio::io::AsyncWriteExt;

    // One group, so both clients' commands share its batches and flights.
    let cluster = Cluster::start(1, 1).await;
    let addr: std::net::SocketAddr = cluster.addr(1).parse().unwrap();
    // Clients with a small receive buffer pipeline many commands and never
    // read their replies: the node's writes to them block, and it stops
    // polling those connections' commands.
    let mut floods = Vec::new();
    for c in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut slow = socket.connect(addr).await.expect("connect");
        let mut bytes = Vec::new();
        for i in 0..20_000 {
            bytes.extend(command(&["LOCK", &format!("slow/{c}/{i}"), "TTL", "60000"]));
        }
        floods.push(tokio::spawn(async move {
            let _ = slow.write_all(&bytes).await;
            slow // kept open, unread, until the test ends
        }));
    }
    // Another client's commands on the same group are answered meanwhile.
    let mut other = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::new();
    for i in 0..50 {
        let name = format!("other/{i}");
        other.write_all(&command(&["LOCK", &name, "KEY", "k"])).await.expect("send");
        other.write_all(&command(&["UNLOCK", &name, "k"])).await.expect("send");
        let replies = tokio::time::timeout(Duration::from_secs(10), read_replies(&mut other, &mut buf, 2))
            .await
            .unwrap_or_else(|_| panic!("round {i}: no answer while another client stopped reading"));
        assert_eq!(replies[1], redis_protocol::resp2::types::OwnedFrame::SimpleString(b"OK".to_vec()), "round {i}");
    }
    floods.iter().for_each(|f| f.abort());
}

/// Reads `n` RESP2 replies from `stream`, keeping what is left in `buf`.
async fn read_replies(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> Vec<redis_protocol::resp2::types::OwnedFrame> {
    use tokio::io::AsyncReadExt;
    let mut replies = Vec::new();
    loop {
        while let Some((frame, used)) = redis_protocol::resp2::decode::decode(buf).expect("a RESP reply") {
            replies.push(frame);
            buf.drain(..used);
            if replies.len() == n {
                return replies;
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the node closed the connection after {} replies", replies.len());
        buf.extend_from_slice(&chunk[..read]);
    }
}
