#!/usr/bin/env bash
# What a user's translation unit pays for the library: compiles the TUs of benchmarks/compile_cost/ one at a
# time with g++ (-O3, C++20, as the Release build) and prints the CPU time, wall time and peak memory of each,
# and each one's CPU-time ratio to the bare LibTorch TU. Record the output in BENCHMARKS.md with the machine it ran on.
#
#   scripts/compile_cost.sh [--repeat N] [--torch-root DIR] [--cxx COMPILER] [--include DIR]
#
# --torch-root: a LibTorch tree (with include/ and include/torch/csrc/api/include/); Debian's /usr by default.
# --include: the library's include folder (default: this tree's), to measure another revision with the same TUs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repeat=3
torch_root=/usr
cxx=${CXX:-g++}
include=$root/include
while (($#)); do
  case $1 in
    --repeat) repeat=$2; shift 2 ;;
    --torch-root) torch_root=$2; shift 2 ;;
    --cxx) cxx=$2; shift 2 ;;
    --include) include=$2; shift 2 ;;
    *) echo "compile_cost.sh: unknown argument '$1' (--repeat N, --torch-root DIR, --cxx COMPILER, --include DIR)" >&2
       exit 2 ;;
  esac
done
[[ -x /usr/bin/time ]] || { echo "compile_cost.sh: needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }
[[ -f $torch_root/include/torch/csrc/api/include/torch/torch.h ]] ||
  { echo "compile_cost.sh: no LibTorch headers under '$torch_root/include'" >&2; exit 1; }
[[ -f $include/composer/composer.hpp ]] || { echo "compile_cost.sh: no composer headers under '$include'" >&2; exit 1; }

flags=(-std=gnu++20 -O3 -DNDEBUG -D_GLIBCXX_USE_CXX11_ABI=1 -I"$include")
[[ $torch_root == /usr ]] || flags+=(-isystem "$torch_root/include")
flags+=(-isystem "$torch_root/include/torch/csrc/api/include")
src=$root/benchmarks/compile_cost

# name | source | extra flags
cases=(
  "bare torch (<torch/torch.h>)|bare_torch.cpp|"
  "Trainer<> via <composer/composer.hpp>|trainer_empty.cpp|"
  "Trainer<> via <composer/trainer/trainer.hpp>|trainer_empty.cpp|-DCOMPOSER_COMPILE_COST_HEADER=<composer/trainer/trainer.hpp>"
  "Trainer<8 methods> via <composer/composer.hpp>|trainer_methods.cpp|"
  "Trainer<8 methods> via their own headers|trainer_methods.cpp|-DCOMPOSER_COMPILE_COST_HEADER=<composer/trainer/trainer.hpp>"
)

echo "compiler: $("$cxx" --version | head -1); LibTorch headers: $torch_root/include; library: $include"
echo "$repeat round(s), the fastest of each kept; flags: ${flags[*]}"
echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%-52s %8s %8s %8s %10s\n' "translation unit" "cpu (s)" "ratio" "wall (s)" "peak (MB)"
tmp=$(mktemp -d -t composer-compile-cost.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Rounds over all cases (rather than all runs of one case, then the next) so that a change in the machine's load
# touches every case alike; each case keeps its fastest round. CPU time (user + system) is the figure compared:
# it moves less than wall time when other work shares the machine.
declare -A best_cpu best_wall best_mem
for ((round = 0; round < repeat; round++)); do
  for i in "${!cases[@]}"; do
    IFS='|' read -r name file extra <<<"${cases[$i]}"
    # shellcheck disable=SC2086
    /usr/bin/time -f '%U %S %e %M' -o "$tmp/time" "$cxx" "${flags[@]}" $extra -c "$src/$file" -o "$tmp/out.o"
    read -r user sys wall mem <"$tmp/time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u + s}')
    if [[ -z ${best_cpu[$i]:-} ]] || awk -v a="$cpu" -v b="${best_cpu[$i]}" 'BEGIN{exit !(a < b)}'; then
      best_cpu[$i]=$cpu best_wall[$i]=$wall best_mem[$i]=$mem
    fi
  done
done
for i in "${!cases[@]}"; do
  IFS='|' read -r name file extra <<<"${cases[$i]}"
  printf '%-52s %8.1f %7.2fx %8.1f %10d\n' "$name" "${best_cpu[$i]}" \
    "$(awk -v a="${best_cpu[$i]}" -v b="${best_cpu[0]}" 'BEGIN{print a / b}')" "${best_wall[$i]}" $((best_mem[$i] / 1024))
done
