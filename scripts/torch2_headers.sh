#!/usr/bin/env bash
# Prints the root of an unpacked LibTorch 2.11 (CUDA 13.0) wheel holding torch/include and torch/share/cmake,
# downloading the wheel from PyPI once and keeping only its headers and CMake files in a cache folder.
# Used to check that the public headers compile against LibTorch 2.x with g++ and nvcc.
set -euo pipefail

version=${COMPOSER_TORCH2_VERSION:-2.11.0}
cache=${COMPOSER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/composer-cpp}
root="$cache/torch-$version"

if [[ -f "$root/torch/include/torch/csrc/api/include/torch/torch.h" ]]; then
  echo "$root"
  exit 0
fi

mkdir -p "$cache/wheel"
if ! ls "$cache/wheel"/torch-"$version"-*.whl >/dev/null 2>&1; then
  echo "torch2_headers: downloading torch==$version from PyPI (about 530 MB, once)" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: "torch==$version" -d "$cache/wheel" >&2
fi
wheel=$(ls "$cache/wheel"/torch-"$version"-*.whl | head -n 1)
tmp="$root.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
unzip -q -o "$wheel" 'torch/include/*' 'torch/share/cmake/*' 'torch/version.py' -d "$tmp" >&2
rm -rf "$root"
mv "$tmp" "$root"
rm -f "$wheel"  # only the headers are needed
echo "$root"
