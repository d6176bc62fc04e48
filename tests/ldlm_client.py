"""Drives a shardlock node with the real ldlm Python client (py-ldlm).

Usage: python3 tests/ldlm_client.py HOST:PORT
Exits 0 and prints OK when every check passes. Run by tests/t04_ldlm.rs.
"""
import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from ldlm import Client
from ldlm import exceptions as E

addr = sys.argv[1]
# retries=0: a transport error fails at once; no auto-renew thread.
a = Client(addr, retries=0, auto_renew_locks=False)
b = Client(addr, retries=0, auto_renew_locks=False)
name = "ldlm-" + uuid.uuid4().hex

HOLD_AND_EXIT = '''
import sys
from ldlm import Client
c = Client(sys.argv[1], retries=0, auto_renew_locks=False)
assert c.try_lock(sys.argv[2]).locked
print("held")
'''


def waiters(lock):
    """How many wait for `lock`, from shardlock's REST describe."""
    body = json.dumps({"name": lock}).encode()
    req = urllib.request.Request(f"http://{addr}/v1/lock/describe", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        described = json.load(resp)["lock"]
    return len(described["waiters"]) if described else 0


def raises(exc, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc:
        return
    raise AssertionError(f"{fn.__name__}{args} did not raise {exc}")


# Lock, then contention from another client.
held = a.lock(name, wait_timeout_seconds=5, lock_timeout_seconds=60)
assert held.locked and held.name == name and held.key, held
assert not b.try_lock(name).locked, "try_lock of a held lock must say locked=False"
assert not b.lock(name, wait_timeout_seconds=1).locked, "a timed-out wait must say locked=False"

# Renew: the holder's key works, a wrong key is refused.
held.renew(120)
assert held.locked
assert a.renew(name, held.key, 120).locked
raises(E.InvalidLockKeyError, a.unlock, name, "wrong-key")
raises((E.LockDoesNotExistOrInvalidKeyError, E.LDLMError), a.renew, name, "wrong-key", 60)

# Another size than the lock's is refused (py-ldlm never sends sizes <= 0).
raises(E.LockSizeMismatchError, b.try_lock, name, size=2)

# Unlock; unknown names; the next client gets the lock with a new key.
held.unlock()
raises(E.LockDoesNotExistError, a.unlock, "never-locked-" + name, "k")
second = b.try_lock(name)
assert second.locked and second.key != held.key
second.unlock()

# A semaphore of size 2 admits two holders, not three.
s1, s2 = a.try_lock(name + "-sem", size=2), b.try_lock(name + "-sem", size=2)
assert s1.locked and s2.locked
assert not a.try_lock(name + "-sem", size=2).locked
s1.unlock()
s2.unlock()

# A blocking lock is handed over when the holder unlocks: b waits in the
# queue (seen through shardlock's REST describe), then a unlocks.
first = a.lock(name + "-wait")
assert first.locked
handed = {}
waiter = threading.Thread(target=lambda: handed.update(got=b.lock(name + "-wait", wait_timeout_seconds=30)))
waiter.start()
deadline = time.monotonic() + 15
while waiters(name + "-wait") != 1:
    assert time.monotonic() < deadline, "b's lock call never queued"
    time.sleep(0.05)
assert waiter.is_alive(), "b's lock returned while a held the lock"
a.unlock(name + "-wait", first.key)
waiter.join(30)
assert not waiter.is_alive() and handed["got"].locked, handed
b.unlock(name + "-wait", handed["got"].key)

# Disconnect releases: another process (grpc shares one connection between
# the clients of a process) locks without a timeout and exits; its
# connection closes and the lock is released.
holder = subprocess.run(
    [sys.executable, "-c", HOLD_AND_EXIT, addr, name + "-conn"], capture_output=True, text=True, timeout=60
)
assert holder.returncode == 0 and holder.stdout.strip() == "held", holder
deadline = time.monotonic() + 15
while True:
    got = a.try_lock(name + "-conn")
    if got.locked:
        break
    assert time.monotonic() < deadline, "the lock of a closed connection was not released"
    time.sleep(0.1)
got.unlock()
a.close()
b.close()
print("OK")
