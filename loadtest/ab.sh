#!/usr/bin/env bash
# A/B of two shardlock builds on one node, alternated (A B A B …), for the
# measurement behind a change to the write path: each round starts a fresh
# node of the build (fsync on), runs the uncontended cycle at each client
# count through the given driver, and stops the node by pid.
#   loadtest/ab.sh BIN_A BIN_B [--rounds 3] [--duration 5] [--clients 1,16,64,256] [--routing resp]
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2; shift 2
ROUNDS=3 DURATION=5 CLIENTS=1,16,64,256 ROUTING=resp
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --routing) ROUTING=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
LOADTEST=${LOADTEST:-./target/release/shardlock-loadtest}
if (exec 3<>/dev/tcp/127.0.0.1/7001) 2>/dev/null; then
  echo "something already listens on 127.0.0.1:7001: stop it first" >&2
  exit 1
fi
ROOT=$(mktemp -d /tmp/shardlock-ab.XXXXXX)
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && while kill -0 "$PID" 2>/dev/null; do sleep 0.1; done; PID=""; }
trap 'stop; rm -rf "$ROOT"' EXIT
echo "| build | clients | cycles/s | p50 ms | p99 ms | server CPU ms/cycle | fsyncs/cycle | other CPU % |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  for label in A B; do
    bin=$A; [ "$label" = B ] && bin=$B
    rm -rf "$ROOT/node"
    "$bin" serve --data-dir "$ROOT/node" >"$ROOT/node.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/7001) 2>/dev/null && break; sleep 0.1; done
    for c in ${CLIENTS//,/ }; do
      row=$("$LOADTEST" --addrs 127.0.0.1:7001 --pids "$PID" --routing "$ROUTING" --workload uncontended \
        --clients "$c" --duration "$DURATION" run 2>&1 | grep '^| shardlock' | tail -1)
      echo "$row" | awk -F'|' -v l="$label" -v c="$c" '{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", l, c, $5, $6, $7, $11, $10, $12}'
    done
    stop
  done
done
