#!/usr/bin/env bash
# A rank killed mid-run: composer_launch must stop the other ranks and exit non-zero within 30 s, naming the rank.
#   rank_killed.sh LAUNCHER DP_TESTS
set -uo pipefail
launcher=$1 dp_tests=$2
log=$(mktemp)
start=$SECONDS
COMPOSER_DP_LEAVING_RANK=1 COMPOSER_DP_KILLED=1 OMP_NUM_THREADS=1 \
  "$launcher" -n 2 --master-port 0 --grace-seconds 3 -- "$dp_tests" "-tc=*leaves*" >"$log" 2>&1
status=$?
took=$((SECONDS - start))
cat "$log"
fail() { echo "rank_killed.sh: $1" >&2; rm -f "$log"; exit 1; }
((status != 0)) || fail "the launcher exited 0 although rank 1 was killed"
((took <= 30)) || fail "the launcher took ${took} s to stop (bound: 30 s)"
grep -q "rank 1 (pid [0-9]*) was killed by signal" "$log" || fail "the launcher's message does not name rank 1"
rm -f "$log"
echo "rank_killed.sh: launcher exited $status after ${took} s, naming rank 1"
