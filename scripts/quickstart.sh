#!/usr/bin/env bash
# Installs what is missing, builds the examples and runs a main job:
#   scripts/quickstart.sh [args]            the main job: a CNN trained on Fashion-MNIST (examples/fashion_mnist.cpp)
#   scripts/quickstart.sh --job lm [args]   the language-model job: a small GPT trained on Debian's fortunes
#                                           (examples/language_model.cpp)
# Other arguments are passed to the example (try --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_dir=${COMPOSER_BUILD_DIR:-$composer_root/build}
job=fashion_mnist
args=()
while (($# > 0)); do
  case $1 in
    --job)
      (($# >= 2)) || { echo "quickstart: --job needs a value: fashion_mnist or lm" >&2; exit 2; }
      job=$2
      shift 2
      ;;
    --job=*) job=${1#--job=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case $job in
  fashion_mnist | mnist) program=fashion_mnist ;;
  lm | language_model) program=language_model ;;
  *) echo "quickstart: unknown --job '$job' (expected fashion_mnist or lm)" >&2; exit 2 ;;
esac
composer_configure "$build_dir" -DCOMPOSER_BUILD_EXAMPLES=ON
cmake --build "$build_dir" -j "$(composer_jobs)" --target "$program"
# runs/<program> under the project unless the arguments name their own --output-dir
output_args=(--output-dir "$composer_root/runs/$program")
for arg in "${args[@]}"; do
  case $arg in --output-dir | --output-dir=*) output_args=() ;; esac
done
"$build_dir/examples/$program" "${output_args[@]}" "${args[@]}"
