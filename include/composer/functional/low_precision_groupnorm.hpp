#pragma once
/// \file
/// `apply_low_precision_groupnorm`: GroupNorms replaced by `modules::LPGroupNorm`, which normalise in the autocast
/// low-precision type. Composer counterpart: `composer.functional.apply_low_precision_groupnorm`.

#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <composer/core/precision.hpp>
#include <composer/functional/low_precision_norm.hpp>
#include <composer/modules/low_precision_norms.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// With `precision` `amp_fp16` or `amp_bf16`, replaces every `torch::nn::GroupNorm` of `model` (not those already
/// `LPGroupNorm`) by a `modules::LPGroupNorm` with the same options and copied weight and bias, which under autocast
/// normalises in the low-precision type; the optimizers' groups trade the old parameters for the new ones. With
/// `fp32` it changes nothing and returns an empty report (Composer warns that it has no effect). Returns what was
/// replaced. Every replaced layer's parent must hold it in a `surgery::SurgicalModule` slot. Composer
/// counterpart: `composer.functional.apply_low_precision_groupnorm(model, precision=None, optimizers=None)`.
/// \throws std::invalid_argument for a layer not in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_low_precision_groupnorm(
    torch::nn::Module& model, Precision precision,
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  return apply_low_precision_norm<modules::LPGroupNormImpl>(model, precision, optimizers);
}

}  // namespace composer::functional
