#pragma once
/// \file
/// composer::algorithms::LowPrecisionLayerNorm — LayerNorms that normalise in the autocast low-precision type.

#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <composer/algorithms/low_precision_norm.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/precision.hpp>
#include <composer/functional/low_precision_layernorm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `LowPrecisionLayerNorm`, with Composer's defaults.
using LowPrecisionLayerNormOptions = LowPrecisionNormOptions;

/// What `LowPrecisionLayerNorm` is among the `LowPrecisionNorm` policies: its checkpoint name, its placement
/// (after the other algorithms, Composer's `sort_low_precision_layernorm_last` pass, so that layers other
/// algorithms add at the same event are replaced too) and its surgery, `functional::apply_low_precision_layernorm`.
struct LayerNormToLowPrecision {
  /// The name under which checkpoints record the policy.
  static constexpr const char* policy_name = "LowPrecisionLayerNorm";
  /// After the other algorithms on its event.
  static constexpr Placement placement = Placement::last;
  /// The surgery: every `torch::nn::LayerNorm` becomes a `modules::LPLayerNorm` under amp precision.
  static surgery::SurgeryReport replace(torch::nn::Module& model, Precision precision,
                                        const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
    return functional::apply_low_precision_layernorm(model, precision, optimizers);
  }
};

/// LowPrecisionLayerNorm: at `apply_at` (`INIT` by default), applies `functional::apply_low_precision_layernorm` to the
/// model with the state's precision and optimizers: under `amp_fp16`/`amp_bf16` every `torch::nn::LayerNorm`
/// becomes a `modules::LPLayerNorm`, which normalises in the autocast type; under `fp32` nothing changes. Logs
/// nothing, as Composer's. Runs after the other algorithms on its event (Composer's pass
/// `sort_low_precision_layernorm_last`). Keeps no checkpoint state: the parameter names do not change, so
/// checkpoints load whichever `apply_at` is used. Constructed as `LowPrecisionLayerNorm()`,
/// `LowPrecisionLayerNorm(Event::AFTER_LOAD)` or `LowPrecisionLayerNorm({.apply_at = Event::AFTER_LOAD})`; an
/// event other than INIT, BEFORE_LOAD and AFTER_LOAD throws std::invalid_argument. Composer counterpart:
/// `composer.algorithms.LowPrecisionLayerNorm(apply_at=Event.INIT)`.
using LowPrecisionLayerNorm = LowPrecisionNorm<LayerNormToLowPrecision>;

}  // namespace composer::algorithms
