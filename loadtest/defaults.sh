#!/usr/bin/env bash
# How the group count and the runtime's threads change a 3-node cluster's
# speed, to choose their defaults by measurement (bench/RESULTS.md): for
# each groups x runtime_threads pair, starts a fresh 3-node cluster on
# loopback (release build, fsync on), runs the uncontended workload at 1,
# 16, 64 and 256 clients and the hot lock with 16 contenders (leader-routing
# Rust client), prints one table row, and stops every node by pid.
#   loadtest/defaults.sh [--duration 5] [--groups "8 16 64 256"] [--threads "1 0"]
# runtime_threads 0 means one worker per core.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=5 GROUPS_LIST="8 16 64 256" THREADS_LIST="1 0"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --groups) GROUPS_LIST=$2; shift 2 ;;
    --threads) THREADS_LIST=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release --bins
ROOT=$(mktemp -d /tmp/shardlock-defaults.XXXXXX)
trap 'DATA_ROOT="$ROOT/c" config/local-cluster.sh stop || true; rm -rf "$ROOT"' EXIT
echo "machine: $(nproc) cores; 3 nodes on loopback, fsync on; ${DURATION}s per run; $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "| groups | runtime_threads | 1 client cycles/s | 1 client p50 ms | 1 client p99 ms | 16 clients | 64 clients | 256 clients | hot lock hand-offs/s | CPU ms/cycle at 64 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
field() { { grep "^| shardlock |" "$1" || echo "| shardlock | failed |||||||||||"; } | head -1 | awk -F'|' -v f="$2" '{gsub(/ /, "", $f); print $f}'; }
for groups in $GROUPS_LIST; do
  for threads in $THREADS_LIST; do
    rm -rf "$ROOT/c"
    SHARDLOCK_GROUPS=$groups SHARDLOCK_RUNTIME_THREADS=$threads DATA_ROOT="$ROOT/c" config/local-cluster.sh start >/dev/null
    pids=$(cat "$ROOT"/c/node*.pid | paste -sd, -)
    run() { ./target/release/shardlock-loadtest run --routing leader --duration "$DURATION" --pids "$pids" "$@" >"$ROOT/out" 2>&1 || true; }
    run --workload uncontended --clients 1; one_rate=$(field "$ROOT/out" 5); one_p50=$(field "$ROOT/out" 6); one_p99=$(field "$ROOT/out" 7)
    run --workload uncontended --clients 16; c16=$(field "$ROOT/out" 5)
    run --workload uncontended --clients 64; c64=$(field "$ROOT/out" 5); cpu64=$(field "$ROOT/out" 11)
    run --workload uncontended --clients 256; c256=$(field "$ROOT/out" 5)
    run --workload hot --hot-clients 16; hot=$(field "$ROOT/out" 5)
    echo "| $groups | $threads | $one_rate | $one_p50 | $one_p99 | $c16 | $c64 | $c256 | $hot | $cpu64 |"
    DATA_ROOT="$ROOT/c" config/local-cluster.sh stop
  done
done
