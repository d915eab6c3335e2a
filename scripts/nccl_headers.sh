#!/usr/bin/env bash
# Prints a folder holding NCCL's headers (nccl.h), unpacked once from PyPI's nvidia-nccl-cu13 wheel (the NCCL that
# PyPI's CUDA 13.0 LibTorch uses) into a cache folder; the wheel is deleted. Used by scripts/test.sh so that the
# test suite compiles the data-parallel code with NCCL (COMPOSER_WITH_NCCL) against the LibTorch 2.x headers,
# although this machine has no GPU to run it.
#   COMPOSER_NCCL_WHEEL   the PyPI package (default nvidia-nccl-cu13)
#   COMPOSER_CACHE_DIR    the cache folder (default ~/.cache/composer-cpp)
set -euo pipefail

package=${COMPOSER_NCCL_WHEEL:-nvidia-nccl-cu13}
cache=${COMPOSER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/composer-cpp}
root="$cache/$package-headers"

if [[ -s "$root/nvidia/nccl/include/nccl.h" ]]; then
  echo "$root/nvidia/nccl/include"
  exit 0
fi
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
echo "nccl_headers: downloading $package from PyPI (about 200 MB, once) for its headers" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: "$package" -d "$download" >&2
shopt -s nullglob
wheels=("$download"/*.whl)
if ((${#wheels[@]} == 0)); then
  echo "nccl_headers: pip left no $package wheel" >&2
  exit 1
fi
rm -rf "$root.partial"
mkdir -p "$root.partial"
unzip -q -o "${wheels[0]}" 'nvidia/nccl/include/*' -d "$root.partial" >&2
if [[ ! -s "$root.partial/nvidia/nccl/include/nccl.h" ]]; then
  echo "nccl_headers: $(basename "${wheels[0]}") holds no nvidia/nccl/include/nccl.h" >&2
  exit 1
fi
rm -rf "$root"
mv "$root.partial" "$root"
echo "$root/nvidia/nccl/include"
