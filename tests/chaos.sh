#!/usr/bin/env bash
# The long fault-injection run: tests/t08_faults.rs for N rounds (default
# 10) against real nodes on loopback whose links go through fault proxies.
# Each round: kill -9 of a leader, SIGSTOP of a leader past the lease, kill
# -9 of a follower, the leader isolated past the lease, a 1|2 split, a
# one-way partition (the leader cannot send in even rounds, cannot receive
# in odd ones), delay with jitter and 5% loss on every link, leadership transfers (drain
# and restart), a slow disk on a leader and a whole-cluster crash, each healed. It prints the
# operations checked, the faults by kind, the violations (must be 0), and
# per kind the longest unavailability and the longest time the locks took
# to be granted again after a heal.
#   tests/chaos.sh [ROUNDS]            # the real build: expects 0 violations
#   tests/chaos.sh [ROUNDS] --broken   # a build that admits queued acquires: expects a catch
#   CHAOS_NODES=5 tests/chaos.sh [ROUNDS]   # 5 nodes, which adds a 2|3 split to each round
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
features=()
[ "${2:-}" = "--broken" ] && features=(--features chaos-broken)
CHAOS_ROUNDS=$rounds nice -n 10 cargo test --locked "${features[@]}" --test integration t08_faults -- --nocapture 2>&1 \
  | grep -E "^chaos:|test result|panicked|violation|node logs"
