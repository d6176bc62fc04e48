#!/usr/bin/env bash
# Compares shardlock with etcd on this machine, in the same run: installs
# etcd from Debian's etcd-server package if missing, starts a 3-member etcd
# cluster and a 3-node shardlock cluster (default config) on loopback, both with
# fsync on, runs `shardlock-loadtest compare` (workloads alternated A B A B,
# --pairs times), prints a Markdown table, and stops every server by pid.
# Every shardlock workload runs three times per pair: with the Rust client,
# which sends each request to its group's leader, with plain gRPC clients
# each pinned to one node (as ldlm, REST and generated gRPC clients are),
# whose node forwards, and with RESP connections pinned the same way (any
# Redis client); the summary gives each row against etcd, with server CPU
# per cycle (all three nodes).
#   loadtest/compare.sh [--duration 5] [--pairs 3] [--uncontended-clients 1,16,64,256]
# NODE_THREADS=N gives every server N threads (GOMAXPROCS for etcd,
# runtime_threads for shardlock); default: each one's own (etcd one per
# core, shardlock its default config, runtime_threads = 1).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
if ! command -v etcd >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server
fi
cargo build --release --bins
ROOT=$(mktemp -d /tmp/shardlock-compare.XXXXXX)
ETCD_PIDS=()
cleanup() {
  for pid in "${ETCD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${ETCD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  DATA_ROOT="$ROOT/shardlock" config/local-cluster.sh stop || true
  rm -rf "$ROOT"
}
trap cleanup EXIT

members="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
THREADS=()
[ -n "${NODE_THREADS:-}" ] && THREADS=("GOMAXPROCS=$NODE_THREADS" "SHARDLOCK_RUNTIME_THREADS=$NODE_THREADS")
for i in 1 2 3; do
  env "${THREADS[@]}" etcd --name "e$i" --data-dir "$ROOT/etcd$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$members" --initial-cluster-state new --initial-cluster-token shardlock-compare \
    --logger zap --log-outputs stderr --log-level error >"$ROOT/etcd$i.log" 2>&1 &
  ETCD_PIDS+=($!)
done
env "${THREADS[@]}" DATA_ROOT="$ROOT/shardlock" config/local-cluster.sh start >/dev/null
for _ in $(seq 1 100); do
  healthy=0
  for i in 1 2 3; do
    # shellcheck disable=SC2015
    exec 3<>"/dev/tcp/127.0.0.1/2379$i" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q '"health":"true"' <&3 && healthy=$((healthy + 1)) || true
    exec 3>&- 3<&- || true
  done
  [ "$healthy" -eq 3 ] && break
  sleep 0.2
done
SL_PIDS=$(cat "$ROOT"/shardlock/node*.pid | paste -sd, -)
ETCD_PID_LIST=$(IFS=,; echo "${ETCD_PIDS[*]}")
echo "server threads: ${NODE_THREADS:-etcd one per core, shardlock runtime_threads from its config}"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; etcd $(etcd --version | head -1 | awk '{print $3}'); shardlock $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
./target/release/shardlock-loadtest --routing all compare --pids "$SL_PIDS" --etcd-pids "$ETCD_PID_LIST" "$@"
