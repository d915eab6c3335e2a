#!/usr/bin/env bash
# Prints the root of an unpacked LibTorch 2.11 (CUDA 13.0) wheel from PyPI: torch/include, torch/share/cmake,
# torch/version.py and the CPU libraries torch/lib/{libtorch_cpu.so,libc10.so,libgomp.so.1,libtorch.so,
# libtorch_global_deps.so} (not libtorch_cuda.so and the other GPU libraries). The wheel is downloaded once, these
# parts are kept in a cache folder and the wheel is deleted.
# Used by scripts/test.sh to build and test the library against LibTorch 2.x on the CPU (cmake/TorchWheelCpu.cmake)
# and to compile the public headers against it with g++ and nvcc (COMPOSER_TORCH2_ROOT).
#   COMPOSER_TORCH2_VERSION  the torch version on PyPI (default 2.11.0)
#   COMPOSER_CACHE_DIR       the cache folder (default ~/.cache/composer-cpp)
set -euo pipefail

version=${COMPOSER_TORCH2_VERSION:-2.11.0}
cache=${COMPOSER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/composer-cpp}
root="$cache/torch-$version"

# What is kept. A cache missing any of it (older versions of this script kept only the headers) is completed.
members=('torch/include/*' 'torch/share/cmake/*' 'torch/version.py' torch/lib/libtorch_cpu.so torch/lib/libc10.so
         torch/lib/libgomp.so.1 torch/lib/libtorch.so torch/lib/libtorch_global_deps.so)
required=(torch/include/torch/csrc/api/include/torch/torch.h torch/share/cmake/Torch/TorchConfig.cmake
          torch/version.py torch/lib/libtorch_cpu.so torch/lib/libc10.so torch/lib/libgomp.so.1
          torch/lib/libtorch.so torch/lib/libtorch_global_deps.so)

complete() {
  local file
  for file in "${required[@]}"; do
    [[ -s "$1/$file" ]] || return 1
  done
}

if complete "$root"; then
  echo "$root"
  exit 0
fi

mkdir -p "$cache/wheel"
shopt -s nullglob
wheels=("$cache/wheel/torch-$version-"*.whl)
if ((${#wheels[@]} == 0)); then
  echo "torch2_wheel: downloading torch==$version from PyPI (about 530 MB, once)" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: "torch==$version" -d "$cache/wheel" >&2
  wheels=("$cache/wheel/torch-$version-"*.whl)
fi
if ((${#wheels[@]} == 0)); then
  echo "torch2_wheel: pip left no torch-$version wheel in $cache/wheel" >&2
  exit 1
fi
wheel=${wheels[0]}
echo "torch2_wheel: unpacking the headers, CMake files and CPU libraries of $(basename "$wheel")" >&2
tmp="$root.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
unzip -q -o "$wheel" "${members[@]}" -d "$tmp" >&2
if ! complete "$tmp"; then
  echo "torch2_wheel: $wheel lacks some of ${required[*]}" >&2
  exit 1
fi
rm -rf "$root"
mv "$tmp" "$root"
rm -f "$wheel"  # everything needed is unpacked
echo "$root"
