#pragma once
/// \file
/// Seeding a run: LibTorch's default generators and, on request, deterministic kernels.

#include <cstdint>
#include <optional>
#include <random>

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

namespace composer {

/// Seeds LibTorch's default CPU generator and, for a CUDA `device`, that device's generator with `seed` (one
/// drawn at random when unset), switches on deterministic kernels when `deterministic` is true, and returns the
/// seed used. Composer counterpart: `composer.utils.reproducibility.seed_all` and
/// `configure_deterministic_mode`.
inline std::uint64_t seed_everything(std::optional<std::uint64_t> seed, const c10::Device& device,
                                     bool deterministic) {
  const std::uint64_t used = seed ? *seed : std::random_device{}();
  at::manual_seed(used);
  if (device.is_cuda()) {
    at::Generator cuda_generator = at::globalContext().defaultGenerator(device);
    cuda_generator.set_current_seed(used);
  }
  if (deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  return used;
}

}  // namespace composer
