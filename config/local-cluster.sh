#!/usr/bin/env bash
# Starts, checks or stops a 3-node shardlock cluster on loopback, using
# config/cluster/node{1,2,3}.toml. Data, logs and pid files go under
# $DATA_ROOT (default ./data/cluster). Processes are stopped by pid.
#
#   config/local-cluster.sh start    # build (release) if needed, start 3 nodes, wait until ready
#   config/local-cluster.sh status   # the cluster as node 1 sees it
#   config/local-cluster.sh stop     # SIGTERM each node by pid, then SIGKILL after 10 s
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${DATA_ROOT:-./data/cluster}
BIN=${SHARDLOCK_BIN:-./target/release/shardlock}

start() {
  [ -x "$BIN" ] || cargo build --release --bin shardlock
  mkdir -p "$DATA_ROOT"
  for i in 1 2 3; do
    if [ -f "$DATA_ROOT/node$i.pid" ] && kill -0 "$(cat "$DATA_ROOT/node$i.pid")" 2>/dev/null; then
      echo "node $i already running (pid $(cat "$DATA_ROOT/node$i.pid"))"; continue
    fi
    # SHARDLOCK_BIN is this script's; a node refuses unknown SHARDLOCK_* settings.
    env -u SHARDLOCK_BIN "$BIN" serve --config "config/cluster/node$i.toml" --data-dir "$DATA_ROOT/node$i" \
      >"$DATA_ROOT/node$i.log" 2>&1 &
    echo $! >"$DATA_ROOT/node$i.pid"
  done
  for _ in $(seq 1 100); do
    if "$BIN" status --json --addr 127.0.0.1:7001 2>/dev/null | grep -q "\"healthy\": true"; then
      "$BIN" status --addr 127.0.0.1:7001; return 0
    fi
    sleep 0.2
  done
  echo "cluster did not become ready; see $DATA_ROOT/node*.log" >&2; return 1
}

stop() {
  for i in 1 2 3; do
    pidfile="$DATA_ROOT/node$i.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) "$BIN" status --addr 127.0.0.1:7001 ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
