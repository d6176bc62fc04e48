#!/usr/bin/env bash
# The long fault-injection run: tests/t08_faults.rs for N rounds (default
# 10) of kill -9 of a leader, SIGSTOP of a leader past the lease, kill -9 of
# a follower and a whole-cluster crash, against real nodes on loopback. It
# prints the faults by kind, the operations checked, the violations (must be
# 0) and the longest unavailability after a fault.
#   tests/chaos.sh [ROUNDS]            # the real build: expects 0 violations
#   tests/chaos.sh [ROUNDS] --broken   # a build that skips the holder check: expects a catch
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
features=()
[ "${2:-}" = "--broken" ] && features=(--features chaos-broken)
CHAOS_ROUNDS=$rounds cargo test --locked "${features[@]}" --test integration t08_faults -- --nocapture 2>&1 \
  | grep -E "^faults:|test result|panicked|violation"
