#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs the whole test suite through ctest, twice:
#   1. against Debian's LibTorch 1.13 in build/, with the checks that the public headers compile against LibTorch 2.x
#      with g++ and nvcc, and the data-parallel code with NCCL (headers from scripts/nccl_headers.sh);
#   2. against PyPI's LibTorch 2.11 in build-torch2/: the CPU libraries of its wheel (fetched once by
#      scripts/torch2_wheel.sh, linked by cmake/TorchWheelCpu.cmake), the tests and the examples built and run again.
# Fails if either run fails.
#   scripts/test.sh                              (build folders: build/ and build-torch2/)
#   COMPOSER_BUILD_DIR=dir scripts/test.sh       (build folders: dir and dir-torch2)
#   COMPOSER_SKIP_TORCH2_CHECK=1 scripts/test.sh (the first run only, without the LibTorch 2.x header checks)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_dir=${COMPOSER_BUILD_DIR:-$composer_root/build}
build_dir=${build_dir%/}
torch2_build_dir=$build_dir-torch2

# Builds everything configured in build folder $1.
build() {
  local start=$SECONDS
  cmake --build "$1" -j "$(composer_jobs)"
  echo "== built $1 in $((SECONDS - start)) s"
}

# Runs ctest in build folder $1, first saying which LibTorch it runs against; returns ctest's status.
run_suite() {
  local dir=$1 start=$SECONDS status=0
  echo "== ctest in $dir against $("$dir/tests/torch_info")"
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 1800) || status=$?
  echo "== ctest in $dir: $( ((status == 0)) && echo passed || echo FAILED) in $((SECONDS - start)) s"
  return "$status"
}

torch2_root=
torch2_args=()
if [[ ${COMPOSER_SKIP_TORCH2_CHECK:-0} != 1 ]]; then
  torch2_root=$(bash "$composer_root/scripts/torch2_wheel.sh")
  torch2_args=(-DCOMPOSER_TORCH2_ROOT="$torch2_root" -DCOMPOSER_NCCL_INCLUDE="$(bash "$composer_root/scripts/nccl_headers.sh")")
fi

failed=()
composer_configure "$build_dir" -DCOMPOSER_BUILD_TESTS=ON -DCOMPOSER_BUILD_BENCHMARKS=ON \
  -DCOMPOSER_BUILD_EXAMPLES=ON "${torch2_args[@]}"
build "$build_dir"
run_suite "$build_dir" || failed+=("$build_dir (Debian LibTorch)")

if [[ -n $torch2_root ]]; then
  composer_configure "$torch2_build_dir" -DCOMPOSER_TORCH_WHEEL_CPU_ROOT="$torch2_root" \
    -DCOMPOSER_BUILD_TESTS=ON -DCOMPOSER_BUILD_BENCHMARKS=OFF -DCOMPOSER_BUILD_EXAMPLES=ON
  build "$torch2_build_dir"
  run_suite "$torch2_build_dir" || failed+=("$torch2_build_dir (PyPI LibTorch 2.x)")
fi

if ((${#failed[@]} > 0)); then
  printf '== test suite FAILED in %s\n' "${failed[@]}"
  exit 1
fi
echo "== test suite passed ($([[ -n $torch2_root ]] && echo "both LibTorch builds" || echo "Debian LibTorch only"))"
