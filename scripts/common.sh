# Shared by test.sh and quickstart.sh: dependencies, then a configured build folder.
# Usage: source scripts/common.sh; composer_configure BUILD_DIR [extra cmake args...]
set -euo pipefail
composer_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

composer_configure() {
  local build_dir=$1
  shift
  bash "$composer_root/scripts/deps.sh"
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S "$composer_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@"
}

composer_jobs() {
  # Each LibTorch translation unit needs 1-2 GiB of memory to compile.
  local cores
  cores=$(nproc)
  echo $((cores < 4 ? cores : 4))
}
