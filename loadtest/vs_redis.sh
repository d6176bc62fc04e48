#!/usr/bin/env bash
# One shardlock node against Redis, the lock service users reach for first,
# on this machine, in one run, both durable: installs redis-server (Debian's
# package) if missing, starts it with `appendonly yes`, `appendfsync always`,
# and one shardlock node (default config, fsync on), runs
# `shardlock-loadtest vs-redis` (the uncontended lock cycle through the same
# RESP driver: shardlock's LOCK/UNLOCK against Redis's SET NX PX + Lua
# compare-and-delete, alternated, --pairs times, at each client count),
# prints every run and a summary with server CPU per cycle, and stops every
# server by pid. The node's gRPC surface runs alongside, for its CPU per cycle.
#   loadtest/vs_redis.sh [--duration 5] [--pairs 3] [--clients 1,16,64,256]
# BASELINE_BIN=path/to/an/older/shardlock also starts a node of that build and
# measures its gRPC surface the same way (before and after).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=5 PAIRS=3 CLIENTS=1,16,64,256
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
if ! command -v redis-server >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server
fi
cargo build --release --bins
ROOT=$(mktemp -d /tmp/shardlock-vs-redis.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

mkdir -p "$ROOT/redis"
redis-server --port 6399 --bind 127.0.0.1 --dir "$ROOT/redis" --appendonly yes --appendfsync always \
  --save "" --daemonize no --logfile "$ROOT/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
# One node: SHARDLOCK_* settings (see `shardlock config default`), fsync on.
start_node() { # name bin client_port peer_port
  env SHARDLOCK_CLIENT_ADDR="127.0.0.1:$3" SHARDLOCK_PEER_ADDR="127.0.0.1:$4" \
    "$2" serve --data-dir "$ROOT/$1" >"$ROOT/$1.log" 2>&1 &
  echo $!
}
NODE_PID=$(start_node node ./target/release/shardlock 7001 7101)
PIDS+=("$NODE_PID")
BASELINE=()
if [ -n "${BASELINE_BIN:-}" ]; then
  BASE_PID=$(start_node baseline "$BASELINE_BIN" 7011 7111)
  PIDS+=("$BASE_PID")
  BASELINE=(--baseline 127.0.0.1:7011 --baseline-pid "$BASE_PID")
fi
for _ in $(seq 1 100); do
  redis-cli -p 6399 ping >/dev/null 2>&1 && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(redis-server --version | awk '{print $3}'); shardlock $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${BASELINE_BIN:+; baseline $BASELINE_BIN}"
echo "redis: appendonly yes, appendfsync always; shardlock: one node, fsync on"
echo
./target/release/shardlock-loadtest --addrs 127.0.0.1:7001 --pids "$NODE_PID" --duration "$DURATION" \
  vs-redis --redis 127.0.0.1:6399 --redis-pid "$REDIS_PID" "${BASELINE[@]}" --pairs "$PAIRS" --clients-list "$CLIENTS"
