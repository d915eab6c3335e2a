#!/usr/bin/env bash
# Makes a relocatable prefix of the project's non-LibTorch dependencies, for a machine that has a CUDA LibTorch,
# nvcc, CMake, ninja and g++ but neither these libraries nor a network (scripts/gpu_check.sh uses it):
#   scripts/make_gpu_prefix.sh                   # .deps/gpu-prefix and .deps/fashion-mnist, then a self-check
#   scripts/make_gpu_prefix.sh --tarball FILE    # also FILE (.tar.zst or .tar.gz) of the prefix
# Everything comes from this machine's Debian archive (`apt-get download`, unpacked with `dpkg -x`; nothing is
# installed, no root needed unless the package lists must be refreshed):
#   include/boost/        Boost.Hana and the few Boost headers it includes (config, core/demangle, version)
#   include/doctest/      doctest
#   include/benchmark/    Google Benchmark, with lib/libbenchmark.so.1debian (Debian ships no static library; its
#                         only dependencies are libstdc++ >= GCC 12's and glibc >= 2.32) and lib/libbenchmark_main.a
#   include/CLI/          CLI11
#   include/zlib.h, zconf.h, lib/libz.a   zlib, static (the target machine need not have a zlib.so link)
#   lib/cmake/            CMake package files for Boost (Boost's own, the headers' one rewritten), doctest,
#                         benchmark and CLI11, every path in them relative to the file itself
#   share/doc/<package>/copyright, PACKAGES.txt   the packages' licences and versions
# and, in a separate folder (not part of the prefix), the four Fashion-MNIST .gz files of dataset-fashion-mnist.
# zlib is found by CMake's own FindZLIB through CMAKE_PREFIX_PATH, which takes the prefix's files first.
#
# The self-check copies the prefix to a temporary folder and configures, builds and runs a small project against
# the copy with /usr and /usr/local excluded from every CMake search (CMAKE_IGNORE_PREFIX_PATH), then checks that
# each package, every header the compiler read from these libraries (ninja's dependency records) and every
# library linked or loaded lies in the copy. It runs with `cmake` from PATH, or each CMake given with --cmake.
#
# Options:
#   --prefix DIR     where to make the prefix (default: .deps/gpu-prefix in the repository); replaced if present
#   --data-dir DIR   where to put the Fashion-MNIST files (default: .deps/fashion-mnist); --no-data skips them
#   --tarball FILE   also write FILE, a .tar.zst (needs zstd) or .tar.gz of the prefix, and print its size
#   --cmake PATH     run the self-check with this CMake (repeatable; default: cmake from PATH)
#   --no-check       skip the self-check
#   --check-only     only run the self-check on an existing prefix
#   --download-dir DIR   where the .deb files are kept (default: .deps/debs)
#   --hide-system -- COMMAND...   run COMMAND where this machine's own copies of these packages (headers, CMake
#                    files, libbenchmark, the libz.a archive) are hidden, as on the GPU machine: a private mount
#                    namespace (root and `unshare` needed) with empty folders and files mounted over them. The
#                    self-check runs this way when it can, and says so.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=$root/.deps/gpu-prefix
data_dir=$root/.deps/fashion-mnist
download_dir=$root/.deps/debs
tarball=""
with_data=1
make_prefix=1
check=1
cmakes=()

die() {
  echo "make_gpu_prefix: $*" >&2
  exit 1
}
temp_dirs=()
cleanup() { if ((${#temp_dirs[@]})); then rm -rf "${temp_dirs[@]}"; fi; }
trap cleanup EXIT
say() { echo "make_gpu_prefix: $*"; }
absolute() { mkdir -p "$1" && (cd "$1" && pwd); }

# This machine's copies of the packages the prefix carries (Debian's paths). The runtime libz.so.1 stays: programs
# here need it, and the GPU machine has one too.
system_copies=(
  /usr/include/boost /usr/include/doctest /usr/include/benchmark /usr/include/CLI /usr/include/zlib.h
  /usr/include/zconf.h /usr/lib/x86_64-linux-gnu/libz.a /usr/lib/x86_64-linux-gnu/libbenchmark.so.1.7.1
  /usr/lib/x86_64-linux-gnu/libbenchmark_main.a /usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0
  /usr/lib/x86_64-linux-gnu/cmake/boost_headers-1.74.0 /usr/lib/x86_64-linux-gnu/cmake/benchmark
  /usr/lib/cmake/doctest /usr/share/cmake/CLI11
)

# Mounts an empty folder or file over each system copy (in a private mount namespace only: see --hide-system).
hide_system_copies() {
  local empty_dir empty_file path hidden=0
  empty_dir=$(mktemp -d)
  empty_file=$(mktemp)
  for path in "${system_copies[@]}"; do
    if [[ -d $path && ! -L $path ]]; then
      mount --bind "$empty_dir" "$path" || die "could not hide $path"
      hidden=$((hidden + 1))
    elif [[ -f $path && ! -L $path ]]; then
      mount --bind "$empty_file" "$path" || die "could not hide $path"
      hidden=$((hidden + 1))
    fi
  done
  rmdir "$empty_dir"
  rm -f "$empty_file"
  export COMPOSER_PREFIX_SYSTEM_HIDDEN=$hidden
}

# Whether --hide-system can work here.
can_hide_system() {
  [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null && unshare --mount --propagation private true 2>/dev/null
}

while (($#)); do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a folder}; shift ;;
    --data-dir) data_dir=${2:?--data-dir needs a folder}; shift ;;
    --no-data) with_data=0 ;;
    --tarball) tarball=${2:?--tarball needs a file name}; shift ;;
    --cmake) cmakes+=("${2:?--cmake needs a path}"); shift ;;
    --no-check) check=0 ;;
    --check-only) make_prefix=0; with_data=0 ;;
    --download-dir) download_dir=${2:?--download-dir needs a folder}; shift ;;
    --hide-system)
      shift
      [[ ${1:-} == -- ]] && shift
      (($#)) || die "--hide-system needs a command after --"
      exec unshare --mount --propagation private "$0" --run-hidden-internal "$@" ;;
    --run-hidden-internal)
      # (inside the namespace made by --hide-system)
      shift
      hide_system_copies
      exec "$@" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
((${#cmakes[@]})) || cmakes=(cmake)

# The Debian packages (binary package names; the version is whatever this machine's archive offers).
boost_pkg=libboost1.74-dev
packages=("$boost_pkg" doctest-dev libbenchmark-dev libbenchmark1debian libcli11-dev zlib1g-dev)
data_pkg=dataset-fashion-mnist

# ---- download and unpack ---------------------------------------------------------------------------------------
download() {
  local wanted=() p
  for p in "$@"; do
    if ! compgen -G "$download_dir/${p}_*.deb" >/dev/null; then wanted+=("$p"); fi
  done
  ((${#wanted[@]})) || return 0
  say "downloading ${wanted[*]}"
  # apt-get download writes into the current folder; as root it warns that _apt cannot write there (harmless).
  if ! (cd "$download_dir" && apt-get download "${wanted[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed"); then
    say "apt-get download failed: refreshing the package lists (apt-get update) and trying again"
    local sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq || die "apt-get update failed"
    (cd "$download_dir" && apt-get download "${wanted[@]}") || die "apt-get download ${wanted[*]} failed"
  fi
}

deb_of() {
  local files=("$download_dir/${1}"_*.deb)
  [[ -f ${files[0]} ]] || die "no .deb for $1 in $download_dir"
  echo "${files[-1]}"
}

# Upstream version of a package: "1:1.2.13.dfsg-1+deb12u1" -> "1.2.13", "2.4.9~ds-1" -> "2.4.9".
upstream_version() {
  dpkg-deb -f "$(deb_of "$1")" Version | sed -E 's/^[0-9]+://; s/[~+-].*//; s/\.dfsg$//'
}

# A basic package version file: compatible with any requested version up to its own.
write_version_file() {
  local file=$1 version=$2
  cat >"$file" <<EOF
# Version file of a package in the relocatable prefix made by composer-cpp's scripts/make_gpu_prefix.sh.
set(PACKAGE_VERSION "$version")
if(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_VERSION VERSION_EQUAL PACKAGE_FIND_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "" AND NOT CMAKE_SIZEOF_VOID_P STREQUAL "8")
  set(PACKAGE_VERSION "\${PACKAGE_VERSION} (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
EOF
}

build_prefix() {
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then die "needs apt-get and dpkg (Debian or Ubuntu)"; fi
  [[ $(dpkg --print-architecture) == amd64 ]] || die "the GPU machine is x86-64: run this on an amd64 Debian"
  mkdir -p "$download_dir"
  download_dir=$(absolute "$download_dir")
  download "${packages[@]}"

  local stage
  stage=$(mktemp -d)
  temp_dirs+=("$stage")
  local p
  for p in "${packages[@]}"; do dpkg -x "$(deb_of "$p")" "$stage/$p"; done

  local tmp="$prefix.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp/include/boost/core" "$tmp/lib/cmake" "$tmp/share/doc"

  # Boost: Hana, and the Boost headers that Hana's own headers include (outside its optional boost/hana/ext/boost
  # adapters for Fusion, MPL and Tuple, which need much more of Boost and which the project does not use).
  local b="$stage/$boost_pkg/usr/include/boost"
  [[ -f $b/hana.hpp ]] || die "$boost_pkg has no boost/hana.hpp"
  cp -a "$b/hana" "$b/hana.hpp" "$b/config" "$b/config.hpp" "$b/version.hpp" "$tmp/include/boost/"
  cp -a "$b/core/demangle.hpp" "$tmp/include/boost/core/"
  rm -rf "$tmp/include/boost/hana/ext/boost" "$tmp/include/boost/hana/ext/boost.hpp"
  # Boost's own package file (relative already: it finds boost_headers beside itself) and a headers-only one.
  local boost_version boost_cmake
  boost_version=$(sed -n 's/^#define BOOST_LIB_VERSION "\([0-9]*\)_\([0-9]*\).*"/\1.\2.0/p' "$b/version.hpp")
  [[ -n $boost_version ]] || die "could not read the Boost version from boost/version.hpp"
  boost_cmake=$(dirname "$(find "$stage/$boost_pkg" -name BoostConfig.cmake | head -n 1)")
  [[ -d $boost_cmake ]] || die "$boost_pkg has no BoostConfig.cmake"
  mkdir -p "$tmp/lib/cmake/Boost-$boost_version" "$tmp/lib/cmake/boost_headers-$boost_version"
  cp "$boost_cmake/BoostConfig.cmake" "$boost_cmake/BoostConfigVersion.cmake" "$tmp/lib/cmake/Boost-$boost_version/"
  cp "$boost_cmake/../boost_headers-$boost_version/boost_headers-config-version.cmake" \
    "$tmp/lib/cmake/boost_headers-$boost_version/"
  cat >"$tmp/lib/cmake/boost_headers-$boost_version/boost_headers-config.cmake" <<'EOF'
# Boost::headers of the relocatable prefix made by composer-cpp's scripts/make_gpu_prefix.sh: Boost.Hana and the
# Boost headers it includes, in <prefix>/include (this file is <prefix>/lib/cmake/boost_headers-<version>/).
if(TARGET Boost::headers)
  return()
endif()
get_filename_component(_boost_prefix_include "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
add_library(Boost::headers INTERFACE IMPORTED)
set_target_properties(Boost::headers PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_boost_prefix_include}"
  INTERFACE_COMPILE_DEFINITIONS "BOOST_ALL_NO_LIB")
unset(_boost_prefix_include)
mark_as_advanced(boost_headers_DIR)
EOF

  # doctest
  cp -a "$stage/doctest-dev/usr/include/doctest" "$tmp/include/"
  mkdir -p "$tmp/lib/cmake/doctest"
  write_version_file "$tmp/lib/cmake/doctest/doctestConfigVersion.cmake" "$(upstream_version doctest-dev)"
  cat >"$tmp/lib/cmake/doctest/doctestConfig.cmake" <<'EOF'
# doctest::doctest of the relocatable prefix made by composer-cpp's scripts/make_gpu_prefix.sh (header-only).
if(NOT TARGET doctest::doctest)
  get_filename_component(_doctest_prefix_include "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES
    INTERFACE_COMPILE_FEATURES cxx_std_11
    INTERFACE_INCLUDE_DIRECTORIES "${_doctest_prefix_include}")
  unset(_doctest_prefix_include)
endif()
EOF

  # Google Benchmark: the shared library (its SONAME link too) and benchmark_main.
  cp -a "$stage/libbenchmark-dev/usr/include/benchmark" "$tmp/include/"
  local lib_bm
  lib_bm=$(find "$stage/libbenchmark1debian" -name 'libbenchmark.so.*' -type f | head -n 1)
  [[ -f $lib_bm ]] || die "libbenchmark1debian has no libbenchmark.so.*"
  local soname
  soname=$(objdump -p "$lib_bm" | awk '$1 == "SONAME" {print $2}')
  [[ -n $soname ]] || die "could not read the SONAME of $lib_bm"
  # under its SONAME, the name the programs linked with it load; no symbolic links (the folder may travel as
  # plain files)
  cp "$lib_bm" "$tmp/lib/$soname"
  cp "$(find "$stage/libbenchmark-dev" -name libbenchmark_main.a | head -n 1)" "$tmp/lib/"
  mkdir -p "$tmp/lib/cmake/benchmark"
  write_version_file "$tmp/lib/cmake/benchmark/benchmarkConfigVersion.cmake" "$(upstream_version libbenchmark-dev)"
  cat >"$tmp/lib/cmake/benchmark/benchmarkConfig.cmake" <<EOF
# benchmark::benchmark and benchmark::benchmark_main of the relocatable prefix made by composer-cpp's
# scripts/make_gpu_prefix.sh: Debian's shared library (no static one is packaged); CMake puts <prefix>/lib in
# the build tree's RPATH of whatever links it.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
if(NOT TARGET benchmark::benchmark)
  get_filename_component(_benchmark_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  add_library(benchmark::benchmark SHARED IMPORTED)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_benchmark_prefix}/lib/$soname"
    IMPORTED_SONAME "$soname"
    INTERFACE_COMPILE_FEATURES cxx_std_11
    INTERFACE_INCLUDE_DIRECTORIES "\${_benchmark_prefix}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(benchmark::benchmark_main STATIC IMPORTED)
  set_target_properties(benchmark::benchmark_main PROPERTIES
    IMPORTED_LOCATION "\${_benchmark_prefix}/lib/libbenchmark_main.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES CXX
    INTERFACE_LINK_LIBRARIES benchmark::benchmark)
  unset(_benchmark_prefix)
endif()
EOF

  # CLI11 (header-only)
  cp -a "$stage/libcli11-dev/usr/include/CLI" "$tmp/include/"
  mkdir -p "$tmp/lib/cmake/CLI11"
  write_version_file "$tmp/lib/cmake/CLI11/CLI11ConfigVersion.cmake" "$(upstream_version libcli11-dev)"
  cat >"$tmp/lib/cmake/CLI11/CLI11Config.cmake" <<'EOF'
# CLI11::CLI11 of the relocatable prefix made by composer-cpp's scripts/make_gpu_prefix.sh (header-only).
if(NOT TARGET CLI11::CLI11)
  get_filename_component(_cli11_prefix_include "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES
    INTERFACE_COMPILE_FEATURES cxx_std_11
    INTERFACE_INCLUDE_DIRECTORIES "${_cli11_prefix_include}")
  unset(_cli11_prefix_include)
endif()
EOF

  # zlib: headers and the static library (position-independent, so it links into PIE executables)
  cp "$stage/zlib1g-dev/usr/include/zlib.h" "$stage/zlib1g-dev/usr/include/zconf.h" "$tmp/include/"
  cp "$(find "$stage/zlib1g-dev" -name libz.a | head -n 1)" "$tmp/lib/"

  # licences and versions
  {
    echo "Made by composer-cpp's scripts/make_gpu_prefix.sh on $(date -u +%Y-%m-%d) from these Debian packages:"
    for p in "${packages[@]}"; do
      printf '  %-22s %s\n' "$p" "$(dpkg-deb -f "$(deb_of "$p")" Version)"
      mkdir -p "$tmp/share/doc/$p"
      cp "$stage/$p/usr/share/doc/$p/copyright" "$tmp/share/doc/$p/" 2>/dev/null || true
    done
    echo "Use: cmake -DCMAKE_PREFIX_PATH=<this folder> ... (the folder may be moved anywhere)."
  } >"$tmp/PACKAGES.txt"

  rm -rf "$prefix"
  mv "$tmp" "$prefix"
  say "prefix: $prefix ($(du -sh "$prefix" | cut -f1))"
}

build_data() {
  mkdir -p "$download_dir"
  download_dir=$(absolute "$download_dir")
  download "$data_pkg"
  local stage
  stage=$(mktemp -d)
  temp_dirs+=("$stage")
  dpkg -x "$(deb_of "$data_pkg")" "$stage"
  local src="$stage/usr/share/datasets/fashion-mnist"
  mkdir -p "$data_dir"
  local f
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [[ -f $src/$f.gz ]] || die "$data_pkg has no $f.gz"
    cp "$src/$f.gz" "$data_dir/"
  done
  say "data: $data_dir ($(du -sh "$data_dir" | cut -f1))"
}

make_tarball() {
  local file=$1 dir base
  dir=$(dirname "$prefix")
  base=$(basename "$prefix")
  mkdir -p "$(dirname "$file")"
  case $file in
    *.tar.zst)
      command -v zstd >/dev/null || die "zstd not found (apt-get install zstd, or ask for a .tar.gz)"
      tar -C "$dir" -cf - "$base" | zstd -q -19 -T0 -o "$file" -f ;;
    *.tar.gz | *.tgz) tar -C "$dir" -czf "$file" "$base" ;;
    *) die "--tarball: name a .tar.zst or .tar.gz file" ;;
  esac
  say "tarball: $file ($(du -h "$file" | cut -f1); $(stat -c %s "$file") bytes)"
}

# ---- the self-check: a copy of the prefix elsewhere, found and used with /usr excluded --------------------------
self_check() {
  local cmake_bin=$1 work
  work=$(mktemp -d)
  temp_dirs+=("$work")
  local copy="$work/moved/somewhere/prefix"
  mkdir -p "$(dirname "$copy")"
  cp -a "$prefix" "$copy"
  mkdir -p "$work/src"
  cat >"$work/src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.21)
project(gpu_prefix_check LANGUAGES CXX)
# With the compiler and tools found: from here on nothing under /usr or /usr/local, nor from the environment or
# the package registries, can be found.
set(CMAKE_IGNORE_PREFIX_PATH /usr /usr/local /)
set(CMAKE_SYSTEM_IGNORE_PREFIX_PATH /usr /usr/local /)
set(CMAKE_FIND_USE_SYSTEM_ENVIRONMENT_PATH OFF)
set(CMAKE_FIND_USE_PACKAGE_REGISTRY OFF)
set(CMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY OFF)
set(Boost_NO_SYSTEM_PATHS ON)
# The project's own calls (tests/, benchmarks/, examples/, the top-level CMakeLists.txt)...
find_package(Boost 1.71 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(doctest REQUIRED)
find_package(benchmark REQUIRED)
find_package(CLI11 REQUIRED)
# ...and Boost's package file directly, as CMake >= 3.30 does with policy CMP0167.
find_package(Boost 1.71 CONFIG REQUIRED)
get_target_property(_boost_inc Boost::headers INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(_doctest_inc doctest::doctest INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(_bm_lib benchmark::benchmark IMPORTED_LOCATION)
get_target_property(_cli_inc CLI11::CLI11 INTERFACE_INCLUDE_DIRECTORIES)
foreach(_found IN ITEMS "Boost_DIR=${Boost_DIR}" "Boost::headers=${_boost_inc}" "doctest_DIR=${doctest_DIR}"
                        "doctest::doctest=${_doctest_inc}" "benchmark_DIR=${benchmark_DIR}" "benchmark::benchmark=${_bm_lib}"
                        "CLI11_DIR=${CLI11_DIR}" "CLI11::CLI11=${_cli_inc}" "ZLIB_INCLUDE_DIRS=${ZLIB_INCLUDE_DIRS}"
                        "ZLIB_LIBRARIES=${ZLIB_LIBRARIES}")
  message(STATUS "found: ${_found}")
  string(REGEX REPLACE "^[^=]*=" "" _path "${_found}")
  cmake_path(ABSOLUTE_PATH _path NORMALIZE)
  string(FIND "${_path}" "${EXPECTED_PREFIX}/" _at)
  if(NOT _at EQUAL 0)
    message(FATAL_ERROR "not in the moved prefix ${EXPECTED_PREFIX}: ${_found}")
  endif()
endforeach()
add_executable(gpu_prefix_check main.cpp)
target_compile_features(gpu_prefix_check PRIVATE cxx_std_20)
target_link_libraries(gpu_prefix_check PRIVATE Boost::headers doctest::doctest benchmark::benchmark CLI11::CLI11
                                               ZLIB::ZLIB)
EOF
  cat >"$work/src/main.cpp" <<'EOF'
// Uses each library of the prefix once: Hana's compile-time tuple, doctest's runner, zlib's deflate/inflate,
// CLI11's parser and one Google Benchmark run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>
#include <boost/hana.hpp>
#include <zlib.h>

#include <cstdio>
#include <string>
#include <vector>

namespace hana = boost::hana;

TEST_CASE("hana and zlib from the prefix") {
  constexpr auto t = hana::make_tuple(hana::int_c<1>, hana::int_c<2>, hana::int_c<3>);
  static_assert(hana::fold_left(t, hana::int_c<0>, hana::plus) == hana::int_c<6>);
  const std::string text(4096, 'z');
  std::vector<unsigned char> packed(compressBound(text.size()));
  uLongf packed_size = packed.size();
  REQUIRE(compress(packed.data(), &packed_size, reinterpret_cast<const Bytef*>(text.data()), text.size()) == Z_OK);
  std::string back(text.size(), '\0');
  uLongf back_size = back.size();
  REQUIRE(uncompress(reinterpret_cast<Bytef*>(back.data()), &back_size, packed.data(), packed_size) == Z_OK);
  CHECK(back == text);
  CHECK(packed_size < 100);
}

static void BM_sum(benchmark::State& state) {
  long s = 0;
  for (auto _ : state) benchmark::DoNotOptimize(s += 1);
}
BENCHMARK(BM_sum);

int main(int argc, char** argv) {
  CLI::App app{"prefix check"};
  int repeat = 1;
  app.add_option("--repeat", repeat, "doctest repetitions")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  int failed = 0;
  for (int i = 0; i < repeat; ++i) {
    doctest::Context context;
    failed |= context.run();
  }
  char name[] = "gpu_prefix_check";
  char min_time[] = "--benchmark_min_time=0.01";
  char* bm_argv[] = {name, min_time, nullptr};
  int bm_argc = 2;
  benchmark::Initialize(&bm_argc, bm_argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("gpu_prefix_check: zlib %s, Boost.Hana %d.%d.%d, doctest %s\n", zlibVersion(), BOOST_HANA_MAJOR_VERSION,
              BOOST_HANA_MINOR_VERSION, BOOST_HANA_PATCH_VERSION, DOCTEST_VERSION_STR);
  return failed;
}
EOF
  say "self-check with $("$cmake_bin" --version | head -n 1), the prefix moved to $copy"
  local log="$work/check.log"
  if ! "$cmake_bin" -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$copy" -DEXPECTED_PREFIX="$copy" >"$log" 2>&1; then
    cat "$log" >&2
    die "self-check: configure failed"
  fi
  grep -E "found: " "$log" | sed 's/^-- /  /'
  "$cmake_bin" --build "$work/build" >>"$log" 2>&1 || { cat "$log" >&2; die "self-check: build failed"; }
  # Every header of these libraries that the compiler read, and every library linked and loaded, is in the copy.
  local headers leaks
  headers=$(ninja -C "$work/build" -t deps | grep -E '/(boost|doctest|benchmark|CLI)/|/zlib\.h|/zconf\.h' | sed 's/^ *//')
  [[ -n $headers ]] || die "self-check: ninja recorded no header of the prefix's libraries"
  leaks=$(grep -v "^$copy/" <<<"$headers" || true)
  [[ -z $leaks ]] || die "self-check: headers read from outside the moved prefix:"$'\n'"$leaks"
  say "  $(wc -l <<<"$headers") headers of Boost, doctest, benchmark, CLI11 and zlib read, all from the moved prefix"
  local link_line
  link_line=$(ninja -C "$work/build" -t commands gpu_prefix_check | tail -n 1)
  grep -q -- "$copy/lib/libz.a" <<<"$link_line" || die "self-check: not linked with the moved libz.a: $link_line"
  grep -q -- "$copy/lib/libbenchmark" <<<"$link_line" || die "self-check: not linked with the moved libbenchmark"
  local loaded
  loaded=$(ldd "$work/build/gpu_prefix_check" | grep -E 'libbenchmark|libz\.' || true)
  grep -q "libbenchmark.*=> $copy/lib/" <<<"$loaded" || die "self-check: libbenchmark is not loaded from the copy: $loaded"
  if grep -q "libz\." <<<"$loaded"; then die "self-check: zlib is loaded as a shared library: $loaded"; fi
  say "  linked with $copy/lib/libz.a (static) and $copy/lib/libbenchmark (loaded from there through the RPATH)"
  local run
  run=$("$work/build/gpu_prefix_check" 2>&1) || { echo "$run" >&2; die "self-check: the check program failed"; }
  grep -E "^gpu_prefix_check:|test cases" <<<"$run" | sed 's/^/  /'
  say "self-check passed"
}

if ((make_prefix)); then
  build_prefix
fi
prefix=$(absolute "$prefix")
[[ -f $prefix/PACKAGES.txt ]] || die "$prefix is not a prefix made by this script (no PACKAGES.txt)"
if ((with_data)); then build_data; fi
if [[ -n $tarball ]]; then make_tarball "$tarball"; fi
if ((check)); then
  if [[ -z ${COMPOSER_PREFIX_SYSTEM_HIDDEN:-} ]] && can_hide_system; then
    # again, with this machine's own copies of the packages out of sight
    cmake_args=()
    for c in "${cmakes[@]}"; do cmake_args+=(--cmake "$(command -v "$c")"); done
    exec unshare --mount --propagation private "$0" --run-hidden-internal "$0" --check-only --prefix "$prefix" \
      "${cmake_args[@]}"
  fi
  if [[ -n ${COMPOSER_PREFIX_SYSTEM_HIDDEN:-} ]]; then
    say "self-check with this machine's own copies hidden ($COMPOSER_PREFIX_SYSTEM_HIDDEN of: ${system_copies[*]})"
  else
    say "self-check with this machine's own copies in place (hiding them needs root and unshare)"
  fi
  for c in "${cmakes[@]}"; do self_check "$c"; done
fi
