#!/usr/bin/env bash
# The CPU cost of idle groups: starts a 3-node cluster on loopback with
# GROUPS groups (release build, fsync on), lets elections, balancing and
# quiescing settle, then samples each node's CPU time (utime+stime from
# /proc/PID/stat) over SECONDS seconds and prints % of one core per node.
# Stops every node by pid.
#   loadtest/idle.sh [--groups 256] [--seconds 20] [--settle 10] [--quiesce-after-ms 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
GROUPS_N=256 SECONDS_N=20 SETTLE=10 QUIESCE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --groups) GROUPS_N=$2; shift 2 ;;
    --seconds) SECONDS_N=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --quiesce-after-ms) QUIESCE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release --bin shardlock
ROOT=$(mktemp -d /tmp/shardlock-idle.XXXXXX)
trap 'DATA_ROOT="$ROOT" config/local-cluster.sh stop || true; rm -rf "$ROOT"' EXIT
export SHARDLOCK_GROUPS=$GROUPS_N
[ -n "$QUIESCE" ] && export SHARDLOCK_RAFT__QUIESCE_AFTER_MS=$QUIESCE
DATA_ROOT="$ROOT" config/local-cluster.sh start >/dev/null
sleep "$SETTLE" # settling time before the sample, not synchronization
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A before
for i in 1 2 3; do before[$i]=$(ticks "$(cat "$ROOT/node$i.pid")"); done
sleep "$SECONDS_N" # the measurement window
printf '| node | groups | CPU %% of one core (%ss) |\n|---|---|---|\n' "$SECONDS_N"
for i in 1 2 3; do
  after=$(ticks "$(cat "$ROOT/node$i.pid")")
  pct=$(awk -v d=$((after - before[$i])) -v hz="$hz" -v s="$SECONDS_N" 'BEGIN{printf "%.1f", 100*d/hz/s}')
  printf '| %s | %s | %s |\n' "$i" "$GROUPS_N" "$pct"
done
./target/release/shardlock status --addr 127.0.0.1:7001 | head -3 || true
