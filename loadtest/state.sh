#!/usr/bin/env bash
# What state costs: starts a fresh 3-node cluster on loopback (release
# build, fsync on), fills it with LOCKS held locks and WAITERS waiters
# (`shardlock-loadtest state`: resident memory per held lock and per
# waiter, per node), then stops every node (SIGTERM, by pid), starts them
# again and times the restart until the cluster serves: a linearizable read
# of a held lock answers with its holder and a new lock can be acquired.
# Prints the data directory size and log bytes per held lock. Stops every
# node by pid at the end.
#   loadtest/state.sh [--locks 1000000] [--waiters 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
LOCKS=1000000 WAITERS=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --locks) LOCKS=$2; shift 2 ;;
    --waiters) WAITERS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release --bins
export DATA_ROOT
DATA_ROOT=$(mktemp -d /tmp/shardlock-state.XXXXXX)
trap 'config/local-cluster.sh stop || true; rm -rf "$DATA_ROOT"' EXIT
config/local-cluster.sh start >/dev/null
pids() { cat "$DATA_ROOT"/node*.pid | paste -sd, -; }
echo "3 nodes, default config (fsync on), $(nproc) cores; $LOCKS held locks, $WAITERS waiters"
echo
./target/release/shardlock-loadtest state --locks "$LOCKS" --waiters "$WAITERS" --pids "$(pids)"
echo
du_kb=$(du -sk "$DATA_ROOT/node1" | awk '{print $1}')
echo "data directory of node 1: $((du_kb / 1024)) MiB, $((du_kb * 1024 / LOCKS)) bytes per held lock (log, snapshots, RocksDB files)"
config/local-cluster.sh stop
started=$(date +%s.%N)
config/local-cluster.sh start >/dev/null
bin=./target/release/shardlock
until $bin describe state/0 --json 2>/dev/null | grep -q '"key"'; do sleep 0.05; done
until $bin acquire "state/after-restart" --ttl 10s >/dev/null 2>&1; do sleep 0.05; done
ended=$(date +%s.%N)
awk -v a="$started" -v b="$ended" 'BEGIN{printf "restart of all 3 nodes until a held lock reads back and a new one is granted: %.1f s\n", b - a}'
