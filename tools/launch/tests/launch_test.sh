#!/usr/bin/env bash
# Checks composer_launch end to end with sh as the "training program".
#
#   launch_test.sh CASE LAUNCHER
#
# CASE is one of success_prefixed, environment, failure_stops_others, bad_arguments; LAUNCHER is the path of
# the built composer_launch. Prints what went wrong and exits 1 on the first mismatch; exits 0 when the case passes.
# The $VARIABLES in single quotes are for the ranks' sh to expand:
# shellcheck disable=SC2016
set -uo pipefail

if (($# != 2)); then
  echo "usage: $0 CASE LAUNCHER" >&2
  exit 2
fi
case_name=$1
launcher=$2
if [[ ! -x $launcher ]]; then
  echo "launch_test: launcher '$launcher' is not an executable file" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/launch_test.XXXXXX")
# A number unique to this run, used as `sleep` arguments so that pgrep finds only this run's processes.
marker="1000.$$${RANDOM}"

cleanup() {
  # Should the launcher have left processes behind, stop this run's (and only this run's) before leaving.
  local pids
  mapfile -t pids < <(pgrep -f -- "$marker")
  if ((${#pids[@]})); then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL [$case_name]: $*" >&2
  for stream in out err; do
    if [[ -s $work/$stream ]]; then
      echo "--- launcher std$stream:" >&2
      cat "$work/$stream" >&2
    fi
  done
  exit 1
}

# Runs the launcher with the given arguments, bounded in time; sets $status and leaves its output in
# $work/out and $work/err.
launch() {
  timeout 45 "$launcher" "$@" >"$work/out" 2>"$work/err"
  status=$?
  if ((status == 124)); then fail "launcher did not finish within 45 s: $*"; fi
}

expect_status() {
  ((status == $1)) || fail "expected exit status $1, got $status"
}

# Compares the launcher's stdout, sorted, with the given lines (ranks may interleave in any order).
expect_lines() {
  local expected actual
  expected=$(printf '%s\n' "$@" | LC_ALL=C sort)
  actual=$(LC_ALL=C sort "$work/out")
  [[ $actual == "$expected" ]] || fail "expected the lines
$expected
got
$actual"
}

# The first line of stderr is the error; the rest is the usage, which names every option.
expect_error_names() {
  local first_line
  first_line=$(head -n 1 "$work/err")
  grep -qE -- "$1" <<<"$first_line" || fail "expected the error to name /$1/, got: $first_line"
}

case_success_prefixed() {
  launch -n 3 --master-port 0 -- sh -c 'echo hello from $RANK'
  expect_status 0
  expect_lines "[rank 0] hello from 0" "[rank 1] hello from 1" "[rank 2] hello from 2"
}

case_environment() {
  launch -n 2 --nnodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port 29555 -- \
    sh -c 'echo $WORLD_SIZE $RANK $LOCAL_RANK $LOCAL_WORLD_SIZE $NODE_RANK $MASTER_ADDR $MASTER_PORT'
  expect_status 0
  expect_lines "[rank 2] 4 2 0 2 1 127.0.0.1 29555" "[rank 3] 4 3 1 2 1 127.0.0.1 29555"

  # --master-port 0: one free port, the same for every rank.
  launch -n 2 --master-port 0 -- sh -c 'echo $MASTER_PORT'
  expect_status 0
  local ports
  ports=$(sed -E 's/^\[rank [01]\] //' "$work/out" | sort -u)
  [[ $(wc -l <"$work/out") -eq 2 ]] || fail "expected two lines of output"
  [[ $ports =~ ^[0-9]+$ ]] || fail "expected both ranks to get the same port, got: $(tr '\n' ' ' <<<"$ports")"
  ((ports >= 1 && ports <= 65535)) || fail "port $ports is outside 1..65535"
}

# Waits up to 5 s for every process carrying the marker to be gone.
expect_no_survivors() {
  local pids
  for _ in $(seq 50); do
    pids=$(pgrep -d, -f -- "$marker") || return 0
    sleep 0.1
  done
  fail "processes left running: $(ps -o pid=,args= -p "$pids")"
}

# Rank 1 fails after a second; the others would sleep for ever. `program` is the sh script they run.
expect_failure_stops_others() {
  local program=$1 start=$SECONDS
  launch -n 3 --master-port 0 -- sh -c "$program"
  local elapsed=$((SECONDS - start))
  ((status != 0)) || fail "expected a non-zero exit status, got 0"
  ((elapsed <= 30)) || fail "the launcher took ${elapsed} s to stop (limit 30 s)"
  grep -q 'rank 1 ' "$work/err" || fail "expected stderr to name rank 1"
  grep -q 'status 3' "$work/err" || fail "expected stderr to give rank 1's exit status 3"
  expect_no_survivors
}

case_failure_stops_others() {
  # The sleeping ranks themselves,
  expect_failure_stops_others "if [ \"\$RANK\" = 1 ]; then sleep 1; exit 3; fi; sleep $marker"
  # and sleeps that are the ranks' children (the rank's shell waits for them), which only the group signal reaches.
  expect_failure_stops_others "if [ \"\$RANK\" = 1 ]; then sleep 1; exit 3; fi; sleep $marker & wait"
}

case_bad_arguments() {
  launch -- true
  expect_status 2
  expect_error_names "(^|[ '])-n([ ':]|$)"

  launch -n 0 -- true
  expect_status 2
  expect_error_names "'0' for -n"

  launch -n x -- true
  expect_status 2
  expect_error_names "'x' for -n"

  launch -n 2 --node-rank 2 --nnodes 2 -- true
  expect_status 2
  expect_error_names "--node-rank"

  launch -n 2
  expect_status 2
  expect_error_names "program"

  launch -n 2 --master-port 70000 -- true
  expect_status 2
  expect_error_names "'70000' for --master-port"

  launch -n 2 --bogus -- true
  expect_status 2
  expect_error_names "--bogus"

  launch -n 2 --nnodes 2 --master-port 0 -- true
  expect_status 2
  expect_error_names "--master-port"

  launch --help
  expect_status 0
  grep -q '^Usage: composer_launch' "$work/out" || fail "expected --help to print the usage on stdout"

  launch -n 2 -- /nonexistent/prog
  ((status != 0)) || fail "expected a non-zero exit status for a missing program"
  grep -q "/nonexistent/prog" "$work/out" "$work/err" || fail "expected the output to name /nonexistent/prog"
}

case "$case_name" in
  success_prefixed | environment | failure_stops_others | bad_arguments) "case_$case_name" ;;
  *)
    echo "launch_test: unknown case '$case_name'" >&2
    exit 2
    ;;
esac
echo "PASS [$case_name]"
