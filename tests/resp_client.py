"""Drives a shardlock node's RESP surface with redis-py, a real Redis client.

Usage: python3 tests/resp_client.py HOST:PORT TOKEN
Exits 0 and prints OK when every check passes. Run by tests/t14_resp.rs.
"""
import sys
import threading
import time
import uuid

import redis

host, port = sys.argv[1].rsplit(":", 1)
token = sys.argv[2]
name = "resp-" + uuid.uuid4().hex


def client(protocol=2, **kw):
    return redis.Redis(host=host, port=int(port), password=token, protocol=protocol, **kw)


def fields(reply):
    """A grant or a row: a dict in RESP3, a flat [field, value, ...] list in RESP2."""
    if isinstance(reply, dict):
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in reply.items()}
    it = iter(reply)
    return {k.decode(): v for k, v in zip(it, it)}


def text(v):
    return v.decode() if isinstance(v, bytes) else v


# Connecting with a password sends AUTH (or HELLO 3 AUTH); PING answers.
a, b = client(), client(protocol=3)
assert a.ping() and b.ping()

# A grant, in RESP2 (flat) and RESP3 (a map).
g = fields(a.execute_command("LOCK", name, "TTL", 10000))
assert g["size"] == 1 and g["permits"] == 1 and g["fencing_token"] > 0, g
key = text(g["key"])
try:
    b.execute_command("LOCK", name)
    raise SystemExit("a held lock was granted again")
except redis.ResponseError as e:
    assert str(e).startswith("LOCK_BUSY"), e

# A blocking LOCK waits (blocking its connection) until the holder unlocks.
got = {}
def waiter():
    got["grant"] = fields(b.execute_command("LOCK", name, "WAIT", 10000, "KEY", "waiter-1"))
t = threading.Thread(target=waiter)
t.start()
deadline = time.time() + 10
while time.time() < deadline:
    d = fields(a.execute_command("DESCRIBE", name))
    if d["waiters"]:
        break
    time.sleep(0.05)
assert a.execute_command("UNLOCK", name, key) in (b"OK", "OK", True)
t.join(10)
w = got["grant"]
assert text(w["key"]) == "waiter-1" and w["fencing_token"] > g["fencing_token"], w

# Validate, refresh, list, describe.
assert a.execute_command("VALIDATE", name, w["fencing_token"]) == 1
assert a.execute_command("VALIDATE", name, g["fencing_token"]) == 0
r = fields(a.execute_command("REFRESH", name, "waiter-1", "TTL", 20000))
assert r["ttl_ms"] == 20000, r
rows = [fields(x) for x in a.execute_command("LIST", "resp-")]
assert any(text(x["name"]) == name for x in rows), rows

# Pipelining: replies in order.
p = a.pipeline(transaction=False)
for i in range(20):
    p.execute_command("LOCK", f"{name}/p/{i}", "KEY", f"k{i}")
for i in range(20):
    p.execute_command("UNLOCK", f"{name}/p/{i}", f"k{i}")
out = p.execute()
assert [text(fields(x)["key"]) for x in out[:20]] == [f"k{i}" for i in range(20)], out[:3]

# A session: its grants are released when the connection closes.
s = client()
assert s.execute_command("SESSION") in (b"OK", "OK", True)
s.execute_command("LOCK", name + "/s")
s.close()
deadline = time.time() + 10
while time.time() < deadline and a.execute_command("DESCRIBE", name + "/s") is not None:
    time.sleep(0.05)
assert a.execute_command("DESCRIBE", name + "/s") is None, "a session's grant outlived its connection"

# Errors: unknown commands, bad arguments, and no token.
for bad, word in [(("GET", "x"), "unknown command"), (("LOCK", name, "TTL", "soon"), "INVALID_ARGUMENT")]:
    try:
        a.execute_command(*bad)
        raise SystemExit(f"{bad} was accepted")
    except redis.ResponseError as e:
        assert word in str(e), e
try:
    redis.Redis(host=host, port=int(port)).execute_command("LOCK", name)
    raise SystemExit("a command without the token was accepted")
except (redis.AuthenticationError, redis.ResponseError) as e:
    assert "UNAUTHENTICATED" in str(e), e
print("OK")
