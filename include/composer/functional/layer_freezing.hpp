#pragma once
/// \file
/// Progressive layer freezing (after FreezeOut, Brock et al. 2017, arXiv:1706.04983): `freeze_layers`, its
/// linear schedule and the flattening of a model into leaf layers.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/common.hpp>

namespace composer::functional {

/// What `freeze_layers` did: how many leaf layers are frozen and the scheduled fraction. Usable with
/// structured bindings: `auto [layers, fraction] = freeze_layers(...)`.
struct FreezeResult {
  std::int64_t layers_frozen = 0;  ///< leaf layers frozen (int(fraction · (L − 1)))
  double fraction = 0.0;           ///< the scheduled fraction of layers to freeze
};

/// The fraction of layers to freeze at elapsed fraction `current_duration` of training: 0 until
/// `freeze_start`, then growing linearly to `freeze_level` at the end of training:
/// freeze_level · (current_duration − freeze_start) / (1 − freeze_start). Composer counterpart:
/// `composer.algorithms.layer_freezing.layer_freezing._freeze_schedule`.
inline double freeze_schedule(double current_duration, double freeze_start = 0.5, double freeze_level = 1.0) {
  if (current_duration <= freeze_start) return 0.0;
  return freeze_level * ((current_duration - freeze_start) / (1.0 - freeze_start));
}

namespace detail {
inline void collect_leaf_layers(torch::nn::Module& module, std::vector<torch::nn::Module*>& layers) {
  const auto children = module.children();
  if (children.empty() && !module.parameters(/*recurse=*/true).empty()) {
    layers.push_back(&module);
    return;
  }
  for (const auto& child : children) collect_leaf_layers(*child, layers);
}
}  // namespace detail

/// Throws std::invalid_argument unless `freeze_start` is in [0, 1) and `freeze_level` in [0, 1]; shared by
/// `freeze_layers` and the `algorithms::LayerFreezing` policy. Composer counterpart: the ranges
/// `composer.functional.freeze_layers` and `LayerFreezing` accept.
inline void check_freeze_arguments(double freeze_start, double freeze_level) {
  if (!(freeze_start >= 0.0 && freeze_start < 1.0))
    checks::fail("freeze_start must be in [0, 1), got " + checks::num(freeze_start));
  if (!(freeze_level >= 0.0 && freeze_level <= 1.0))
    checks::fail("freeze_level must be in [0, 1], got " + checks::num(freeze_level));
}

/// The model's leaf layers in depth-first order: modules without children that hold at least one
/// parameter (a module with children is searched, its own parameters aside). Composer counterpart:
/// `composer.algorithms.layer_freezing.layer_freezing._get_layers`. The pointers do not own the modules: they
/// stay valid while `model` lives.
inline std::vector<torch::nn::Module*> leaf_layers(torch::nn::Module& model) {
  std::vector<torch::nn::Module*> layers;
  detail::collect_leaf_layers(model, layers);
  return layers;
}

/// Freezes the earliest leaf layers of `model` for elapsed fraction `current_duration` of training: of the
/// L leaf layers (see `leaf_layers`), the last is never frozen, and the first
/// int(freeze_schedule(current_duration, freeze_start, freeze_level) · (L − 1)) are. Each parameter of a
/// frozen layer is removed from every parameter group of `optimizers` (so momentum and weight decay stop
/// too), stops requiring gradients, and drops its stored gradient. Layers frozen earlier stay frozen.
/// \throws std::invalid_argument for freeze_start outside [0, 1) or freeze_level outside [0, 1].
/// Composer counterpart: `composer.functional.freeze_layers(model, optimizers, current_duration,
/// freeze_start=0.5, freeze_level=1.0)`.
inline FreezeResult freeze_layers(torch::nn::Module& model,
                                  const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers,
                                  double current_duration, double freeze_start = 0.5, double freeze_level = 1.0) {
  check_freeze_arguments(freeze_start, freeze_level);
  const auto layers = leaf_layers(model);
  const double fraction = freeze_schedule(current_duration, freeze_start, freeze_level);
  const std::int64_t candidates = layers.empty() ? 0 : static_cast<std::int64_t>(layers.size()) - 1;
  const auto depth = static_cast<std::int64_t>(fraction * static_cast<double>(candidates));
  for (std::int64_t i = 0; i < candidates && i < depth; ++i) {
    for (const auto& p : layers[static_cast<std::size_t>(i)]->parameters(/*recurse=*/true)) {
      for (const auto& optimizer : optimizers) {
        if (!optimizer) continue;
        for (auto& group : optimizer->param_groups()) {
          auto& params = group.params();
          std::erase_if(params, [&](const at::Tensor& q) { return q.unsafeGetTensorImpl() == p.unsafeGetTensorImpl(); });
        }
      }
      p.set_requires_grad(false);
      p.mutable_grad() = at::Tensor();
    }
  }
  return {depth, fraction};
}

/// `freeze_layers` with one optimizer.
inline FreezeResult freeze_layers(torch::nn::Module& model, const std::shared_ptr<torch::optim::Optimizer>& optimizer,
                                  double current_duration, double freeze_start = 0.5, double freeze_level = 1.0) {
  return freeze_layers(model, std::vector<std::shared_ptr<torch::optim::Optimizer>>{optimizer}, current_duration,
                       freeze_start, freeze_level);
}

}  // namespace composer::functional
