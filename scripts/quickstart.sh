#!/usr/bin/env bash
# Installs what is missing, builds the examples and runs the main one: training a CNN on Fashion-MNIST.
# Arguments are passed to the example (try --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_dir=${COMPOSER_BUILD_DIR:-$composer_root/build}
composer_configure "$build_dir" -DCOMPOSER_BUILD_EXAMPLES=ON
cmake --build "$build_dir" -j "$(composer_jobs)" --target fashion_mnist
# runs/fashion_mnist under the project unless the arguments name their own --output-dir
output_args=(--output-dir "$composer_root/runs/fashion_mnist")
for arg in "$@"; do
  case $arg in --output-dir | --output-dir=*) output_args=() ;; esac
done
"$build_dir/examples/fashion_mnist" "${output_args[@]}" "$@"
