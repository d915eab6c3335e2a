#pragma once
/// \file
/// composer::algorithms::LowPrecisionGroupNorm — GroupNorms that normalise in the autocast low-precision type.

#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <composer/algorithms/low_precision_norm.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/precision.hpp>
#include <composer/functional/low_precision_groupnorm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `LowPrecisionGroupNorm`, with Composer's defaults.
using LowPrecisionGroupNormOptions = LowPrecisionNormOptions;

/// What `LowPrecisionGroupNorm` is among the `LowPrecisionNorm` policies: its checkpoint name, its placement (where
/// it is declared; Composer has no ordering pass for it) and its surgery,
/// `functional::apply_low_precision_groupnorm`.
struct GroupNormToLowPrecision {
  /// The name under which checkpoints record the policy.
  static constexpr const char* policy_name = "LowPrecisionGroupNorm";
  /// In declaration order among the algorithms on its event.
  static constexpr Placement placement = Placement::declared;
  /// The surgery: every `torch::nn::GroupNorm` becomes a `modules::LPGroupNorm` under amp precision.
  static surgery::SurgeryReport replace(torch::nn::Module& model, Precision precision,
                                        const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
    return functional::apply_low_precision_groupnorm(model, precision, optimizers);
  }
};

/// LowPrecisionGroupNorm: at `apply_at` (`INIT` by default), applies `functional::apply_low_precision_groupnorm` to the
/// model with the state's precision and optimizers: under `amp_fp16`/`amp_bf16` every `torch::nn::GroupNorm`
/// becomes a `modules::LPGroupNorm`, which normalises in the autocast type; under `fp32` nothing changes. Logs
/// nothing, as Composer's. Keeps no checkpoint state: the parameter names do not change, so checkpoints load
/// whichever `apply_at` is used. Constructed as `LowPrecisionGroupNorm()`, `LowPrecisionGroupNorm(Event::AFTER_LOAD)`
/// or `LowPrecisionGroupNorm({.apply_at = Event::AFTER_LOAD})`; an event other than INIT, BEFORE_LOAD and AFTER_LOAD
/// throws std::invalid_argument. Composer counterpart:
/// `composer.algorithms.LowPrecisionGroupNorm(apply_at=Event.INIT)`.
using LowPrecisionGroupNorm = LowPrecisionNorm<GroupNormToLowPrecision>;

}  // namespace composer::algorithms
