#!/usr/bin/env python3
"""One-client REST cycles (acquire + release) sent to a group's leader and
to a follower of the same group, on a running 3-node cluster: shows what a
forwarded request costs over a direct one.

    loadtest/forward_latency.py [--cycles 300] [--addrs 127.0.0.1:7001,...]

Prints p50 / p99 of a cycle for each path and the difference. Bounded by
--cycles; talks HTTP/1.1 keep-alive to each node.
"""
import argparse
import http.client
import json
import time
import zlib


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: {resp.status} {data[:200]!r}")
    return json.loads(data)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addrs", default="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    ap.add_argument("--cycles", type=int, default=300)
    args = ap.parse_args()
    addrs = args.addrs.split(",")
    conns = {a: http.client.HTTPConnection(*a.split(":"), timeout=10) for a in addrs}
    nodes = {call(conns[a], "GET", "/v1/admin/status")["node_id"]: a for a in addrs}
    leaders = [g["leader_id"] for g in call(conns[addrs[0]], "GET", "/v1/admin/status")["groups"]]
    # A name in a group led by a node we can reach, and a follower of it.
    name, leader = None, None
    for i in range(10000):
        cand = f"fwd/{i}"
        # Ask the server which group it is in: the acquire answer says.
        ans = call(conns[addrs[0]], "POST", "/v1/lock/acquire", {"name": cand, "ttl_ms": 5000})
        call(conns[addrs[0]], "POST", "/v1/lock/release", {"name": cand, "key": ans["key"]})
        lid = leaders[ans["group"]]
        if nodes.get(lid) in conns:
            name, leader = cand, nodes[lid]
            break
    follower = next(a for a in addrs if a != leader)
    results = {}
    for label, addr in (("leader", leader), ("follower (forwarded)", follower)) * 2:
        # A fresh connection: an idle keep-alive one may have been closed.
        conn, times = http.client.HTTPConnection(*addr.split(":"), timeout=10), []
        for _ in range(args.cycles):
            t = time.perf_counter()
            ans = call(conn, "POST", "/v1/lock/acquire", {"name": name, "ttl_ms": 5000})
            call(conn, "POST", "/v1/lock/release", {"name": name, "key": ans["key"]})
            times.append((time.perf_counter() - t) * 1000)
        results[label] = times
    print(f"lock {name!r}: leader {leader}, follower {follower}, {args.cycles} cycles each (second round)")
    print("| path | p50 ms | p99 ms |\n|---|---|---|")
    for label, times in results.items():
        print(f"| {label} | {pct(times, 0.5):.2f} | {pct(times, 0.99):.2f} |")
    d = pct(results["follower (forwarded)"], 0.5) - pct(results["leader"], 0.5)
    print(f"forwarding adds {d:.2f} ms at p50")


if __name__ == "__main__":
    main()
