#!/usr/bin/env bash
# Scale-out on loopback (bench/RESULTS.md): for each cluster shape
# NODES:FACTOR (default 3:3 6:3 9:3 9:9; 3:3 and 9:9 are full replication,
# every node holding every group), starts a fresh cluster of `shardlock
# serve` processes (release build, fsync on, --groups-per-node groups per
# node: as many replicas and leaders per node at every size), runs the
# uncontended workload with --clients-per-node clients per node offering
# --rate-per-node cycles/s per node (so each node carries the same load at
# every size, as it would on its own machine; closed-loop clients would
# instead share this machine's two cores, each node's load falling as
# nodes are added) and the hot lock with 16 contenders, closed loop (one
# group on 3 replicas at any size), both with the leader-routing Rust
# client; prints one row per workload with what a cycle costs the whole
# cluster: server CPU, WAL fsyncs and peer messages, and the messages by
# method. Every node is stopped by pid after its shape.
#   loadtest/scale.sh [--duration 8] [--groups-per-node 4] [--clients-per-node 22] [--rate-per-node 60] [--shapes "3:3 6:3 9:3 9:9"]
# All nodes share this machine's cores, so cycles/s does not grow with
# nodes here; the cost per cycle is what says how capacity grows with
# machines (README, "Membership, placement and growing a cluster").
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=8 GROUPS_PER_NODE=4 PER_NODE=22 RATE_PER_NODE=60 SHAPES="3:3 6:3 9:3 9:9"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --groups-per-node) GROUPS_PER_NODE=$2; shift 2 ;;
    --clients-per-node) PER_NODE=$2; shift 2 ;;
    --rate-per-node) RATE_PER_NODE=$2; shift 2 ;;
    --shapes) SHAPES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release --bins
BIN=./target/release/shardlock
ROOT=$(mktemp -d /tmp/shardlock-scale.XXXXXX)
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap 'stop_all; rm -rf "$ROOT"' EXIT

# Writes node $2's config of an $1-node cluster with factor $3 into $4.
write_config() {
  local n=$1 id=$2 factor=$3 dir=$4
  {
    echo "node_id = $id"
    echo "data_dir = \"$dir/node$id\""
    echo "client_addr = \"127.0.0.1:$((17000 + id))\""
    echo "peer_addr = \"127.0.0.1:$((17100 + id))\""
    echo "groups = $NGROUPS"
    echo "replication_factor = $factor"
    for m in $(seq 1 "$n"); do
      printf '[[initial_cluster]]\nid = %s\nclient_addr = "127.0.0.1:%s"\npeer_addr = "127.0.0.1:%s"\n' \
        "$m" $((17000 + m)) $((17100 + m))
    done
  } >"$dir/node$id.toml"
}

# The numbers of a `shardlock-loadtest run` row: field $2 of the first
# shardlock row of file $1.
field() { { grep "^| shardlock |" "$1" || echo "| shardlock | failed |||||||||||"; } | head -1 | awk -F'|' -v f="$2" '{gsub(/ /, "", $f); print $f}'; }
# The sum of the peer messages per cycle the --stages output lists.
messages() { grep "peer messages per cycle" "$1" | head -1 | sed 's/.*: //' | tr ',' '\n' | awk '{s += $2} END {printf "%.2f", s}'; }

echo "machine: $(nproc) cores; loopback, fsync on; per node: $GROUPS_PER_NODE groups, $PER_NODE uncontended clients offering $RATE_PER_NODE cycles/s; ${DURATION}s per run; $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "| nodes | replication_factor | groups | workload | clients | cycles/s | p99 ms | server CPU ms/cycle (all nodes) | fsyncs/cycle (all nodes) | peer messages/cycle (all nodes) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
DETAIL=""
for shape in $SHAPES; do
  n=${shape%:*} factor=${shape#*:}
  NGROUPS=$((GROUPS_PER_NODE * n))
  dir="$ROOT/$n-$factor"
  mkdir -p "$dir"
  addrs=""
  for id in $(seq 1 "$n"); do
    write_config "$n" "$id" "$factor" "$dir"
    "$BIN" serve --config "$dir/node$id.toml" >"$dir/node$id.log" 2>&1 &
    PIDS+=($!)
    addrs="$addrs${addrs:+,}127.0.0.1:$((17000 + id))"
  done
  for _ in $(seq 1 150); do
    "$BIN" status --json --addr 127.0.0.1:17001 2>/dev/null | grep -q '"healthy": true' && break
    sleep 0.2
  done
  pids=$(IFS=,; echo "${PIDS[*]}")
  CLIENTS=$((PER_NODE * n))
  for workload in uncontended hot; do
    rate=$([ "$workload" = hot ] && echo 0 || echo $((RATE_PER_NODE * n)))
    ./target/release/shardlock-loadtest run --routing leader --stages --workload "$workload" --rate "$rate" \
      --clients "$CLIENTS" --hot-clients 16 --duration "$DURATION" --addrs "$addrs" --pids "$pids" \
      >"$dir/$workload.out" 2>&1 || true
    clients=$([ "$workload" = hot ] && echo 16 || echo "$CLIENTS")
    out="$dir/$workload.out"
    DETAIL="$DETAIL
- $n nodes, factor $factor, $workload: $(grep "peer messages per cycle" "$out" | head -1)"
    echo "| $n | $factor | $NGROUPS | $workload | $clients | $(field "$out" 5) | $(field "$out" 7) | $(field "$out" 11) | $(field "$out" 10) | $(messages "$out") |"
  done
  stop_all
done
echo
echo "Peer messages by method:$DETAIL"
