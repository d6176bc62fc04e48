#!/usr/bin/env bash
# Watchers under load: one fresh 3-node cluster (fsync on), the uncontended
# cycle of 64 leader-routing clients run without and with prefix watches of
# the run's locks, alternated (--rounds times). The rows with watchers give
# events/s per watcher, the delay from the acquiring client's reply to the
# first watcher (p50, p99) and the servers' apply→send delay.
#   loadtest/watch.sh [--rounds 3] [--duration 10] [--clients 64] [--watchers 4]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 DURATION=10 CLIENTS=64 WATCHERS=4
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --watchers) WATCHERS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
export DATA_ROOT
DATA_ROOT=$(mktemp -d /tmp/shardlock-watch.XXXXXX)
trap 'config/local-cluster.sh stop >/dev/null; rm -rf "$DATA_ROOT"' EXIT
[ -x target/release/shardlock ] && [ -x target/release/shardlock-loadtest ] || cargo build --release --bins
config/local-cluster.sh start >/dev/null
PIDS=$(cat "$DATA_ROOT"/node*.pid | paste -sd, -)
echo "cluster: 3 nodes, 4 groups, loopback, fsync on; $(nproc) cores; $CLIENTS clients"
header=1
for round in $(seq 1 "$ROUNDS"); do
  for w in 0 "$WATCHERS"; do
    out=$(./target/release/shardlock-loadtest --pids "$PIDS" --workload uncontended --routing leader \
      --clients "$CLIENTS" --duration "$DURATION" --watchers "$w" run)
    if [ "$header" = 1 ]; then echo "$out" | grep '^|' | head -2; header=0; fi
    echo "$out" | grep '^| shardlock'
  done
done
