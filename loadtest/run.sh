#!/usr/bin/env bash
# Starts a fresh 3-node cluster (the default 4 groups) on loopback in a temporary data
# directory, runs shardlock-loadtest against it, and stops every node by pid.
# Extra arguments go to shardlock-loadtest (e.g. --duration 20 --clients 128).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA_ROOT
DATA_ROOT=$(mktemp -d /tmp/shardlock-loadtest.XXXXXX)
trap 'config/local-cluster.sh stop; rm -rf "$DATA_ROOT"' EXIT
[ -x target/release/shardlock ] && [ -x target/release/shardlock-loadtest ] || cargo build --release --bins
config/local-cluster.sh start >/dev/null
echo "cluster: 3 nodes, 4 groups, loopback, fsync on; $(nproc) cores"
./target/release/shardlock-loadtest --pids "$(cat "$DATA_ROOT"/node*.pid | paste -sd, -)" "$@"
