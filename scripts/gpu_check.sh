#!/usr/bin/env bash
# Proves the project on a machine with a CUDA GPU in one call, from a bare checkout, against the LibTorch of the
# installed PyTorch 2.x (nothing is downloaded or installed):
#   scripts/gpu_check.sh
# Steps, each timed, each logged, a failure reported and the independent steps after it still run:
#   configure  build-gpu/ with COMPOSER_BUILD_CUDA=ON, tests, examples and benchmarks, for the GPU's architecture
#   build      everything (ninja, one job per core; ccache when installed)
#   tests      every suite through ctest: the CPU suites against this LibTorch, cuda_tests (the fused kernel against
#              eager ATen), cuda_trainer_tests (the Trainer and every method on CUDA, checkpoints between CUDA and the
#              CPU), each preset of the main job for a few batches on CUDA, the data-parallel runs (Gloo over loopback)
#              and, when python3's torch brings NCCL's headers, NCCL on one GPU (distributed.nccl_one_gpu)
#   main job   examples/fashion_mnist_cuda (the example compiled by nvcc) --device cuda --precision amp_bf16
#              --preset regularized for 3 epochs on the real data, four times: the fused pass on and off (--no-fuse),
#              uint8 and float32 training batches (--inputs), batches pinned (--pin-memory); alongside the tests
#   benchmark  bench_fused_transforms_cuda, 3 repetitions, aggregates only
# and writes into "$OUT" (or build-gpu/check/) at most eight files:
#   summary.md                         environment, pass/fail and seconds per step, test counts, the accuracy, the
#                                      benchmark table (fused / eager / copy medians) -- printed at the end too
#   configure.txt, build.txt           the CMake configure and build logs
#   tests.txt, tests_output.txt        ctest's report, and the full output of every test (ctest's LastTest.log)
#   fashion_mnist.txt                  the main job's output
#   bench_fused_transforms_cuda.txt    the benchmark's console table, and .json, Google Benchmark's JSON
# It exits non-zero when any step failed; the summary names it.
#
# Dependencies: python3 with torch 2.x built with CUDA (its LibTorch and CMake files), nvcc (PATH or
# /usr/local/cuda/bin), CMake >= 3.21, ninja and a C++20 host compiler; Boost (Hana), doctest, Google Benchmark,
# CLI11 and zlib are taken from the prefix that scripts/make_gpu_prefix.sh makes (.deps/gpu-prefix, found
# automatically) or from the system; the Fashion-MNIST files from .deps/fashion-mnist (made by the same script) or
# /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
#
# Options:
#   --steps LIST   comma-separated subset of: configure,build,tests,main,bench (default: all)
#   --no-gpu       run without a visible GPU (a rehearsal: the configure and build work, the CPU suites run, the
#                  steps that need the GPU fail); needs COMPOSER_GPU_TORCH_PREFIX when python3 has no torch
#   -h, --help     this text
# Environment:
#   OUT                         results folder (default: <build>/check)
#   COMPOSER_GPU_BUILD_DIR      build folder (default: build-gpu)
#   COMPOSER_GPU_PREFIX         dependency prefix (default: .deps/gpu-prefix when it exists)
#   COMPOSER_GPU_DATA           Fashion-MNIST folder (default: .deps/fashion-mnist, else Debian's folder)
#   COMPOSER_GPU_TORCH_PREFIX   LibTorch's CMake prefix (default: python3 -c 'import torch; torch.utils.cmake_prefix_path')
#   COMPOSER_GPU_PREFIX_PATH    more CMake prefixes, ';'-separated;  COMPOSER_GPU_CMAKE_ARGS  more CMake arguments
#   COMPOSER_GPU_JOBS           build jobs (default: nproc);  COMPOSER_GPU_TEST_JOBS  ctest jobs (default: nproc/2)
#   COMPOSER_GPU_BUDGET         seconds for the whole check (default 480); each step's time limit is cut to fit it
#   COMPOSER_GPU_MAIN_DURATION  the main job's --duration (default 3ep)
#   COMPOSER_GPU_BENCH_MIN_TIME Google Benchmark's --benchmark_min_time in seconds (default 0.2)
#   TORCH_CUDA_ARCH_LIST        GPU architectures to compile for (default: the first GPU's own, 9.0 with --no-gpu)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
started=$(date +%s)

steps="configure,build,tests,main,bench"
need_gpu=1
while (($#)); do
  case $1 in
    --steps) steps=${2:?--steps needs a list}; shift ;;
    --no-gpu) need_gpu=0 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for s in ${steps//,/ }; do
  case $s in configure | build | tests | main | bench) ;; *) echo "gpu_check: unknown step '$s'" >&2; exit 2 ;; esac
done
wants() { [[ ,$steps, == *,$1,* ]]; }

build_dir=${COMPOSER_GPU_BUILD_DIR:-$root/build-gpu}
out_dir=${OUT:-$build_dir/check}
budget=${COMPOSER_GPU_BUDGET:-480}
deadline=$((started + budget))
jobs=${COMPOSER_GPU_JOBS:-$(nproc)}
test_jobs=${COMPOSER_GPU_TEST_JOBS:-$((($(nproc) + 1) / 2))}
main_duration=${COMPOSER_GPU_MAIN_DURATION:-3ep}
bench_min_time=${COMPOSER_GPU_BENCH_MIN_TIME:-0.2}

say() { echo "gpu_check: $*"; }
die() {
  echo "gpu_check: $*" >&2
  exit 1
}

# ---- step bookkeeping ------------------------------------------------------------------------------------------
step_names=() step_results=() step_seconds=() step_notes=()
record() {  # NAME RESULT SECONDS NOTE
  step_names+=("$1") step_results+=("$2") step_seconds+=("$3") step_notes+=("$4")
  say "$1: $2 (${3} s)${4:+ -- $4}"
}
failed_steps() {
  local i out=""
  for i in "${!step_names[@]}"; do
    [[ ${step_results[$i]} == passed || ${step_results[$i]} == skipped ]] || out+="${out:+, }${step_names[$i]}"
  done
  echo "$out"
}
# Seconds a step may take: at most CAP (seconds of the default 480 s budget, scaled with the budget), and no more
# than what leaves RESERVE seconds of the budget for the later steps.
limit() {
  local cap=$(($1 * budget / 480)) reserve=$2 left
  left=$((deadline - $(date +%s) - reserve))
  ((left < cap)) && cap=$left
  echo "$cap"
}
# Runs COMMAND with a time limit, output to LOG; sets $rc (124: over the limit) and $took (seconds).
timed() {
  local seconds=$1 log=$2
  shift 2
  local t0
  t0=$(date +%s)
  if ((seconds < 5)); then
    rc=124
    echo "gpu_check: not started, the time budget is spent" >"$log"
  else
    timeout --kill-after=15 "$seconds" "$@" >"$log" 2>&1
    rc=$?
  fi
  took=$(($(date +%s) - t0))
}
result_of() {  # RC LIMIT -> passed / FAILED (exit N) / TIMED OUT (limit N s)
  if (($1 == 0)); then echo passed; elif (($1 == 124 || $1 == 137)); then echo "TIMED OUT (limit $2 s)"; else echo "FAILED (exit $1)"; fi
}

# ---- tools, GPU, LibTorch --------------------------------------------------------------------------------------
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi
command -v nvcc >/dev/null 2>&1 || die "nvcc not found (add the CUDA toolkit's bin folder to PATH)"
for tool in cmake ninja ctest timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

torch_prefix=${COMPOSER_GPU_TORCH_PREFIX:-}
torch_version="?" torch_cuda="?" gpu_name="none" gpu_arch=""
if command -v python3 >/dev/null 2>&1; then
  torch_info=$(python3 - "$need_gpu" 2>&1 <<'EOF'
import sys
need_gpu = sys.argv[1] == "1"
try:
    import torch
except Exception as e:  # noqa: BLE001
    print("import torch failed: %s" % e)
    sys.exit(1)
if int(torch.__version__.split(".")[0]) < 2:
    print("PyTorch %s is older than 2.x" % torch.__version__)
    sys.exit(1)
if torch.version.cuda is None:
    print("PyTorch %s is built without CUDA" % torch.__version__)
    sys.exit(1)
visible = torch.cuda.is_available()
if need_gpu and not visible:
    print("PyTorch %s sees no CUDA device" % torch.__version__)
    sys.exit(1)
print(torch.utils.cmake_prefix_path)
print("%d.%d" % torch.cuda.get_device_capability(0) if visible else "")
print(torch.__version__)
print(torch.version.cuda)
print(torch.cuda.get_device_name(0) if visible else "none")
EOF
  )
  torch_rc=$?
  if ((torch_rc == 0)); then
    [[ -n $torch_prefix ]] || torch_prefix=$(sed -n 1p <<<"$torch_info")
    gpu_arch=$(sed -n 2p <<<"$torch_info")
    torch_version=$(sed -n 3p <<<"$torch_info")
    torch_cuda=$(sed -n 4p <<<"$torch_info")
    gpu_name=$(sed -n 5p <<<"$torch_info")
  elif ((need_gpu)); then
    die "needs PyTorch 2.x with CUDA and a visible GPU: $(tail -n 1 <<<"$torch_info")"
  else
    say "no usable torch in python3 ($(tail -n 1 <<<"$torch_info")); using COMPOSER_GPU_TORCH_PREFIX"
  fi
elif ((need_gpu)); then
  die "python3 not found (it tells where PyTorch's LibTorch is and which GPU this is)"
fi
[[ -n $torch_prefix && -d $torch_prefix ]] || die "no LibTorch CMake prefix: set COMPOSER_GPU_TORCH_PREFIX"
if [[ $torch_version == "?" && -f $torch_prefix/../../version.py ]]; then
  torch_version=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$torch_prefix/../../version.py")
  torch_cuda=$(sed -n "s/^cuda[^=]*= '\(.*\)'/\1/p" "$torch_prefix/../../version.py")
fi
if [[ -z ${TORCH_CUDA_ARCH_LIST:-} ]]; then
  TORCH_CUDA_ARCH_LIST=${gpu_arch:-9.0}
fi
export TORCH_CUDA_ARCH_LIST

# ---- the dependency prefix and the data ------------------------------------------------------------------------
dep_prefix=${COMPOSER_GPU_PREFIX:-}
if [[ -z $dep_prefix && -f $root/.deps/gpu-prefix/PACKAGES.txt ]]; then dep_prefix=$root/.deps/gpu-prefix; fi
if [[ -n $dep_prefix ]]; then
  [[ -d $dep_prefix/lib/cmake ]] || die "COMPOSER_GPU_PREFIX=$dep_prefix holds no lib/cmake (make it with scripts/make_gpu_prefix.sh)"
  dep_prefix=$(cd "$dep_prefix" && pwd)
fi
data_dir=${COMPOSER_GPU_DATA:-}
if [[ -z $data_dir ]]; then
  for d in "$root/.deps/fashion-mnist" /usr/share/datasets/fashion-mnist; do
    if compgen -G "$d/train-images-idx3-ubyte*" >/dev/null; then data_dir=$d; break; fi
  done
fi
prefix_path="$torch_prefix"
[[ -z $dep_prefix ]] || prefix_path="$dep_prefix;$prefix_path"
[[ -z ${COMPOSER_GPU_PREFIX_PATH:-} ]] || prefix_path="$COMPOSER_GPU_PREFIX_PATH;$prefix_path"
# Also through the environment (':'-separated there), for the projects that the package tests configure.
export CMAKE_PREFIX_PATH="${prefix_path//;/:}${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
extra_args=()
[[ -z ${COMPOSER_GPU_CMAKE_ARGS:-} ]] || read -r -a extra_args <<<"$COMPOSER_GPU_CMAKE_ARGS"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

mkdir -p "$build_dir" "$out_dir" || die "cannot create $build_dir and $out_dir"
build_dir=$(cd "$build_dir" && pwd)
out_dir=$(cd "$out_dir" && pwd)
nvcc_version=$(nvcc --version | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p')
environment=$(
  echo "- GPU: $gpu_name (compute capability ${gpu_arch:-?}; compiling for $TORCH_CUDA_ARCH_LIST)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -n 1)"
  fi
  echo "- PyTorch $torch_version (CUDA $torch_cuda), LibTorch CMake prefix $torch_prefix"
  echo "- nvcc $nvcc_version; $(cmake --version | head -n 1); ninja $(ninja --version); $(c++ --version | head -n 1)"
  echo "- $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory; ccache: $(command -v ccache >/dev/null && echo yes || echo no)"
  echo "- dependency prefix: ${dep_prefix:-none (system packages)}"
  echo "- Fashion-MNIST: ${data_dir:-not found}"
  echo "- commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo ' plus uncommitted changes')"
)
echo "$environment"
if [[ ${nvcc_version%%.*} != "${torch_cuda%%.*}" && $torch_cuda != "?" ]]; then
  say "warning: nvcc $nvcc_version and PyTorch's CUDA $torch_cuda differ in their major version"
fi

# NCCL's headers, from the nvidia-nccl wheel PyPI's torch depends on: the NCCL test (distributed.nccl_one_gpu).
nccl_include=$(python3 -c 'import os, nvidia.nccl as n; print(os.path.join(list(n.__path__)[0], "include"))' 2>/dev/null || true)
[[ -n $nccl_include && -s $nccl_include/nccl.h ]] || nccl_include=""

# ---- configure -------------------------------------------------------------------------------------------------
configured=0
if wants configure; then
  t=$(limit 150 300)
  say "configuring $build_dir (limit $t s)"
  timed "$t" "$out_dir/configure.txt" cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCOMPOSER_BUILD_CUDA=ON -DCOMPOSER_BUILD_TESTS=ON -DCOMPOSER_BUILD_BENCHMARKS=ON -DCOMPOSER_BUILD_EXAMPLES=ON \
    -DCMAKE_PREFIX_PATH="$prefix_path" -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
    ${data_dir:+-DCOMPOSER_FASHION_MNIST_DIR="$data_dir"} ${nccl_include:+-DCOMPOSER_NCCL_INCLUDE="$nccl_include"} \
    "${launcher[@]}" "${extra_args[@]}"
  note=""
  if ((rc != 0)); then
    note="see configure.txt: $(grep -m 1 -E 'CMake Error|error' "$out_dir/configure.txt" | cut -c1-200)"
    tail -n 30 "$out_dir/configure.txt" >&2
  fi
  record configure "$(result_of "$rc" "$t")" "$took" "$note"
  ((rc == 0)) && configured=1
elif [[ -f $build_dir/build.ninja ]]; then
  configured=1
fi

# ---- build -----------------------------------------------------------------------------------------------------
if wants build; then
  if ((configured)); then
    t=$(limit 420 110)
    say "building everything with $jobs jobs (limit $t s)"
    # the nvcc targets first (the longest single compilations), then the rest; -k 0: as much as can be built
    first=()
    for target in cuda_tests cuda_trainer_tests fashion_mnist_cuda bench_fused_transforms_cuda; do
      ninja -C "$build_dir" -t query "$target" >/dev/null 2>&1 && first+=("$target")
    done
    timed "$t" "$out_dir/build.txt" ninja -C "$build_dir" -k 0 -j "$jobs" "${first[@]}" all
    note=""
    if ((rc != 0)); then
      note="$(grep -c '^FAILED: ' "$out_dir/build.txt") target(s) failed; first: $(grep -m 1 '^FAILED: ' "$out_dir/build.txt" | cut -c9-160)"
      grep -E -m 20 "error|FAILED" "$out_dir/build.txt" >&2
    fi
    record build "$(result_of "$rc" "$t")" "$took" "$note"
  else
    record build skipped 0 "not configured"
  fi
fi

# ---- tests, with the main job alongside -------------------------------------------------------------------------
main_pid=""
# the example compiled by nvcc (its Trainer has the fused CUDA pass); the host-compiled one otherwise
main_exe=$build_dir/examples/fashion_mnist_cuda
[[ -x $main_exe ]] || main_exe=$build_dir/examples/fashion_mnist
if wants main; then
  if [[ ! -x $main_exe ]]; then
    record "main job" "FAILED (not built)" 0 "$main_exe is missing"
  elif [[ -z $data_dir ]]; then
    record "main job" "FAILED (no data)" 0 "no Fashion-MNIST files (.deps/fashion-mnist or /usr/share/datasets/fashion-mnist; scripts/make_gpu_prefix.sh makes the first)"
  else
    main_limit=$(limit 300 50)
    main_t0=$(date +%s)
    rm -rf "$build_dir/check_fashion_mnist" "$build_dir/check_fashion_mnist.seconds"
    say "main job: regularized preset, amp_bf16, $main_duration on CUDA, fused and eager, uint8 and float32 inputs (limit $main_limit s, alongside the tests)"
    # four runs one after the other: the fused pass on and off, uint8 batches (normalised on the GPU) and float32
    # batches (normalised on the host); their logs one after the other in fashion_mnist.txt
    (
      main_cmd=(bash -c '
        exe=$1; shift
        status=0
        for inputs in uint8 float32; do
          for fuse in "" --no-fuse; do
            echo "=== fashion_mnist --inputs $inputs ${fuse:---fuse}"
            SECONDS=0
            "$exe" "$@" --inputs "$inputs" $fuse --output-dir "$OUT_BASE-$inputs${fuse}" || status=1
            echo "=== wall seconds $SECONDS"
          done
        done
        exit $status' _ "$main_exe" --device cuda --precision amp_bf16 --preset regularized \
        --duration "$main_duration" --no-progress --threads 4 --pin-memory --data-dir "$data_dir")
      OUT_BASE="$build_dir/check_fashion_mnist" timed "$main_limit" "$out_dir/fashion_mnist.txt" "${main_cmd[@]}"
      echo "$took" >"$build_dir/check_fashion_mnist.seconds"
      exit "$rc"
    ) &
    main_pid=$!
  fi
fi

if wants tests; then
  if ((configured)) && [[ -f $build_dir/CTestTestfile.cmake ]]; then
    t=$(limit 300 45)
    say "running every suite with ctest -j $test_jobs (limit $t s)"
    rm -f "$build_dir/Testing/Temporary/LastTest.log"
    timed "$t" "$out_dir/tests.txt" ctest --test-dir "$build_dir" -j "$test_jobs" --output-on-failure \
      --timeout $((t > 30 ? t - 15 : t))
    [[ -f $build_dir/Testing/Temporary/LastTest.log ]] && cp "$build_dir/Testing/Temporary/LastTest.log" "$out_dir/tests_output.txt"
    note=$(grep -E "tests passed|tests failed" "$out_dir/tests.txt" | tail -n 1 | sed 's/^ *//')
    record tests "$(result_of "$rc" "$t")" "$took" "$note"
  else
    record tests skipped 0 "not configured"
  fi
fi

if [[ -n $main_pid ]]; then
  wait "$main_pid"
  main_rc=$?
  main_took=$(cat "$build_dir/check_fashion_mnist.seconds" 2>/dev/null || echo $(($(date +%s) - main_t0)))
  note=$(grep "test accuracy" "$out_dir/fashion_mnist.txt" | sed 's/^fashion_mnist: //' | tr '\n' ';')
  [[ $main_rc -eq 0 ]] || note="$note$(tail -n 3 "$out_dir/fashion_mnist.txt" | tr '\n' ' ' | cut -c1-240)"
  record "main job" "$(result_of "$main_rc" "$main_limit")" "$main_took" "$note"
fi

# ---- benchmark -------------------------------------------------------------------------------------------------
bench_exe=$build_dir/benchmarks/bench_fused_transforms_cuda
if wants bench; then
  if [[ -x $bench_exe ]]; then
    t=$(limit 120 5)
    say "benchmark: 3 repetitions, aggregates only (limit $t s)"
    timed "$t" "$out_dir/bench_fused_transforms_cuda.txt" "$bench_exe" --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true --benchmark_min_time="$bench_min_time" \
      --benchmark_out="$out_dir/bench_fused_transforms_cuda.json" --benchmark_out_format=json
    record benchmark "$(result_of "$rc" "$t")" "$took" ""
  else
    record benchmark "FAILED (not built)" 0 "$bench_exe is missing"
  fi
fi

# ---- summary ---------------------------------------------------------------------------------------------------
# doctest's counts per test program, from ctest's full log
doctest_counts() {
  awk '
    /^[0-9]+\/[0-9]+ Test: / { name = $3 }
    /\[doctest\] test cases:/ { sub(/.*test cases: */, ""); gsub(/ *\| */, ", "); sub(/[, ]+$/, ""); cases[name] = $0 }
    /\[doctest\] assertions:/ { sub(/.*assertions: */, ""); gsub(/ *\| */, ", "); sub(/[, ]+$/, ""); asserts[name] = $0 }
    END { for (n in cases) printf "| %s | %s | %s |\n", n, cases[n], asserts[n] }' "$1" | sort
}
bench_table() {
  python3 - "$1" <<'EOF' 2>&1 || echo "(could not read $1)"
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
med = {}
for b in runs:
    if b.get("aggregate_name") == "median":
        med[b["run_name"]] = b
cases = sorted({name.split("/", 1)[1] for name in med})
print("| case | eager µs | fused µs | copy (roof) µs | fused / eager speed-up | roof / fused | max abs diff |")
print("|---|---|---|---|---|---|---|")
for c in cases:
    e, f, r = (med.get(v + "/" + c) for v in ("eager", "fused", "roof"))
    t = lambda b: b["real_time"] if b else float("nan")
    diff = f.get("max_abs_diff", float("nan")) if f else float("nan")
    print("| %s | %.1f | %.1f | %.1f | %.2fx | %.2f | %.2g |" % (c, t(e), t(f), t(r), t(e) / t(f), t(r) / t(f), diff))
EOF
}
{
  echo "# composer-cpp GPU check"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - started)) s in all (budget $budget s)."
  echo
  echo "$environment"
  echo
  echo "## Steps"
  echo
  echo "| step | result | seconds | note |"
  echo "|---|---|---|---|"
  for i in "${!step_names[@]}"; do
    echo "| ${step_names[$i]} | ${step_results[$i]} | ${step_seconds[$i]} | ${step_notes[$i]//|/\\|} |"
  done
  failed=$(failed_steps)
  echo
  if [[ -z $failed ]]; then echo "**All steps passed.**"; else echo "**Failed: $failed.**"; fi
  if [[ -f $out_dir/tests.txt ]]; then
    echo
    echo "## Tests (ctest; full output of each in tests_output.txt)"
    echo
    echo '```'
    grep -E "tests passed|tests failed|Total Test time" "$out_dir/tests.txt"
    grep -E "^ *[0-9]+/[0-9]+ Test +#" "$out_dir/tests.txt" | grep -v " Passed " || true
    sed -n '/The following tests/,$p' "$out_dir/tests.txt" | grep -v "Errors while running" || true
    echo '```'
    if [[ -f $out_dir/tests_output.txt ]]; then
      echo
      echo "| program | doctest test cases | assertions |"
      echo "|---|---|---|"
      doctest_counts "$out_dir/tests_output.txt"
      echo
      echo "Slowest tests:"
      echo '```'
      grep -E "^ *[0-9]+/[0-9]+ Test +#" "$out_dir/tests.txt" | awk '{print $(NF-1) " s  " $4}' | sort -rn | head -n 8
      echo '```'
    fi
  fi
  if [[ -f $out_dir/fashion_mnist.txt ]]; then
    echo
    echo "## Main job: regularized preset, amp_bf16, $main_duration on CUDA, fused / eager x uint8 / float32 inputs"
    echo
    echo '```'
    grep -E "^===|^fashion_mnist: (preset|time-to-accuracy|test accuracy|[0-9]+ training microbatches)|rror" "$out_dir/fashion_mnist.txt" | cut -c1-400 || tail -n 5 "$out_dir/fashion_mnist.txt"
    echo '```'
  fi
  if [[ -s $out_dir/bench_fused_transforms_cuda.json ]]; then
    echo
    echo "## bench_fused_transforms_cuda (medians of 3, real time)"
    echo
    bench_table "$out_dir/bench_fused_transforms_cuda.json"
  elif [[ -f $out_dir/bench_fused_transforms_cuda.txt ]]; then
    echo
    echo "## bench_fused_transforms_cuda"
    echo '```'
    tail -n 20 "$out_dir/bench_fused_transforms_cuda.txt"
    echo '```'
  fi
} >"$out_dir/summary.md"
# keep every log under the size that comes back from a remote run
for f in "$out_dir"/*.txt; do
  if [[ -f $f && $(stat -c %s "$f") -gt 12000000 ]]; then
    { head -c 6000000 "$f"; echo; echo "[... cut: the file was $(stat -c %s "$f") bytes ...]"; tail -c 6000000 "$f"; } >"$f.cut" && mv "$f.cut" "$f"
  fi
done

echo
cat "$out_dir/summary.md"
echo
say "outputs in $out_dir"
[[ -z $(failed_steps) ]]
