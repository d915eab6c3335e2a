#!/usr/bin/env bash
# Builds and runs the CUDA kernels' tests and benchmark on a machine with a CUDA GPU, against the LibTorch of
# the installed PyTorch 2.x (no internet needed; nothing is downloaded or installed):
#   scripts/gpu_check.sh
# It configures build-gpu/ with COMPOSER_BUILD_CUDA=ON, builds cuda_tests and bench_fused_transforms_cuda, runs
# the tests, then the benchmark (3 repetitions, aggregates only), and writes into "${OUT:-build-gpu}/":
#   environment.txt                   GPU, driver, PyTorch, nvcc and CMake versions
#   configure.txt, build.txt          the CMake configure and build logs
#   cuda_tests.txt                    the doctest output of cuda_tests
#   bench_fused_transforms_cuda.txt   the benchmark's console table
#   bench_fused_transforms_cuda.json  the same in Google Benchmark's JSON
# It exits non-zero if anything fails (the benchmark still runs after failing tests).
#
# Needs: python3 with torch 2.x built with CUDA, nvcc (PATH or /usr/local/cuda/bin), cmake >= 3.21, ninja, a
# C++20 host compiler, and the project's other dependencies, found by CMake: Boost >= 1.71 headers (Hana), zlib,
# doctest and Google Benchmark (both with their CMake package files). Point CMake at ones in unusual places with
#   COMPOSER_GPU_PREFIX_PATH="/opt/doctest;/opt/benchmark" scripts/gpu_check.sh
# and pass any other CMake arguments through COMPOSER_GPU_CMAKE_ARGS. TORCH_CUDA_ARCH_LIST (e.g. "9.0") picks the
# GPU architectures to compile for; by default the first GPU's own.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${COMPOSER_GPU_BUILD_DIR:-$root/build-gpu}
out_dir=${OUT:-$build_dir}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

fail() {
  echo "gpu_check: $*" >&2
  exit 1
}

# ---- tools -----------------------------------------------------------------------------------------------------
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
command -v nvcc >/dev/null 2>&1 || fail "nvcc not found (add the CUDA toolkit's bin folder to PATH)"
command -v cmake >/dev/null 2>&1 || fail "cmake not found"
command -v ninja >/dev/null 2>&1 || fail "ninja not found"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"

torch_info=$(python3 - 2>/dev/null <<'EOF'
import sys
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
if not torch.cuda.is_available():
    print("PyTorch %s sees no CUDA device" % torch.__version__)
    sys.exit(1)
major, minor = torch.cuda.get_device_capability(0)
print(torch.utils.cmake_prefix_path)
print("%d.%d" % (major, minor))
print(torch.__version__)
print(torch.version.cuda)
print(torch.cuda.get_device_name(0))
EOF
) || fail "needs PyTorch 2.x with CUDA and a visible GPU: $torch_info"
torch_prefix=$(sed -n 1p <<<"$torch_info")
gpu_arch=$(sed -n 2p <<<"$torch_info")
torch_version=$(sed -n 3p <<<"$torch_info")
torch_cuda=$(sed -n 4p <<<"$torch_info")
gpu_name=$(sed -n 5p <<<"$torch_info")
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$gpu_arch}

nvcc_version=$(nvcc --version | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p')
if [[ ${nvcc_version%%.*} != "${torch_cuda%%.*}" ]]; then
  echo "gpu_check: warning: nvcc $nvcc_version and PyTorch's CUDA $torch_cuda differ in their major version" >&2
fi

{
  echo "gpu: $gpu_name (compute capability $gpu_arch; compiling for $TORCH_CUDA_ARCH_LIST)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
  fi
  echo "pytorch: $torch_version (CUDA $torch_cuda) at $torch_prefix"
  echo "nvcc: $nvcc_version"
  cmake --version | head -n 1
  echo "host compiler: $(c++ --version | head -n 1)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$out_dir/environment.txt"
cat "$out_dir/environment.txt"

prefix_path="$torch_prefix"
if [[ -n ${COMPOSER_GPU_PREFIX_PATH:-} ]]; then prefix_path="$COMPOSER_GPU_PREFIX_PATH;$prefix_path"; fi
extra_args=()
if [[ -n ${COMPOSER_GPU_CMAKE_ARGS:-} ]]; then read -r -a extra_args <<<"$COMPOSER_GPU_CMAKE_ARGS"; fi

# ---- the project's other dependencies, checked by CMake itself before the real configure ------------------------
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat >"$probe/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.21)
project(composer_gpu_check_probe LANGUAGES CXX)
set(missing "")
find_package(Boost 1.71 QUIET)
if(Boost_FOUND)
  find_path(COMPOSER_PROBE_HANA boost/hana.hpp HINTS ${Boost_INCLUDE_DIRS})
endif()
if(NOT Boost_FOUND OR NOT COMPOSER_PROBE_HANA)
  list(APPEND missing "Boost >= 1.71 headers with Boost.Hana (Debian: libboost-dev, or set BOOST_ROOT)")
endif()
find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  list(APPEND missing "zlib with its header (Debian: zlib1g-dev)")
endif()
find_package(doctest QUIET)
if(NOT doctest_FOUND)
  list(APPEND missing
       "doctest with its CMake package (Debian: doctest-dev, or add its prefix to COMPOSER_GPU_PREFIX_PATH)")
endif()
find_package(benchmark QUIET)
if(NOT benchmark_FOUND)
  list(APPEND missing "Google Benchmark with its CMake package \
(Debian: libbenchmark-dev, or add its prefix to COMPOSER_GPU_PREFIX_PATH)")
endif()
if(missing)
  list(JOIN missing "\n  - " text)
  message(FATAL_ERROR "missing dependencies:\n  - ${text}")
endif()
EOF
if ! cmake -S "$probe" -B "$probe/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix_path" "${extra_args[@]}" \
  >"$probe/log.txt" 2>&1; then
  if grep -q "missing dependencies" "$probe/log.txt"; then
    echo "gpu_check: missing dependencies:" >&2
    grep -E '^ +- ' "$probe/log.txt" >&2
  else
    cat "$probe/log.txt" >&2
  fi
  fail "the CUDA build needs the dependencies above; nothing was built"
fi

# ---- configure, build ------------------------------------------------------------------------------------------
echo "gpu_check: configuring $build_dir"
if ! cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCOMPOSER_BUILD_CUDA=ON -DCOMPOSER_BUILD_TESTS=ON -DCOMPOSER_BUILD_BENCHMARKS=ON -DCOMPOSER_BUILD_EXAMPLES=OFF \
  -DCMAKE_PREFIX_PATH="$prefix_path" -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" "${extra_args[@]}" \
  >"$out_dir/configure.txt" 2>&1; then
  tail -n 40 "$out_dir/configure.txt" >&2
  fail "configure failed (full log: $out_dir/configure.txt)"
fi
echo "gpu_check: building cuda_tests and bench_fused_transforms_cuda"
if ! cmake --build "$build_dir" --target cuda_tests bench_fused_transforms_cuda -j "$(nproc)" \
  >"$out_dir/build.txt" 2>&1; then
  grep -E "error|Error" "$out_dir/build.txt" | head -n 40 >&2 || true
  fail "build failed (full log: $out_dir/build.txt)"
fi

# ---- run -------------------------------------------------------------------------------------------------------
status=0
echo "gpu_check: running cuda_tests"
if ! "$build_dir/tests/cuda_tests" >"$out_dir/cuda_tests.txt" 2>&1; then
  echo "gpu_check: cuda_tests FAILED (see $out_dir/cuda_tests.txt)" >&2
  status=1
fi
tail -n 4 "$out_dir/cuda_tests.txt"
echo

echo "gpu_check: running bench_fused_transforms_cuda"
if ! "$build_dir/benchmarks/bench_fused_transforms_cuda" --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out_dir/bench_fused_transforms_cuda.json" \
  --benchmark_out_format=json >"$out_dir/bench_fused_transforms_cuda.txt" 2>&1; then
  echo "gpu_check: bench_fused_transforms_cuda FAILED (see $out_dir/bench_fused_transforms_cuda.txt)" >&2
  status=1
fi
cat "$out_dir/bench_fused_transforms_cuda.txt"

echo "gpu_check: outputs in $out_dir"
exit "$status"
