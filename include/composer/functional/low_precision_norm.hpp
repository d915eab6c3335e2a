#pragma once
/// \file
/// `apply_low_precision_norm<LowPrecisionImpl>`: the surgery shared by `apply_low_precision_layernorm` and
/// `apply_low_precision_groupnorm`, which replaces a kind of LibTorch norm layer by its low-precision module, and
/// those two functions (`low_precision_layernorm.hpp` and `low_precision_groupnorm.hpp` include this).

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include <composer/core/precision.hpp>
#include <composer/modules/low_precision_norm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// With `precision` `amp_fp16` or `amp_bf16`, replaces every layer of type `LowPrecisionImpl::Original` of `model`
/// (not those already `LowPrecisionImpl`) by a `LowPrecisionImpl` (`modules::LPLayerNormImpl` or
/// `modules::LPGroupNormImpl`) with the same options and copied weight and bias, which under autocast normalises in
/// the low-precision type; the optimizers' groups trade the old parameters for the new ones. With `fp32` it changes
/// nothing and returns an empty report. Returns what was replaced. Every replaced layer's parent must hold it in a
/// `surgery::SurgicalModule` slot. Composer counterpart: the body shared by `apply_low_precision_layernorm` and
/// `apply_low_precision_groupnorm`.
/// \throws std::invalid_argument for a layer not in a slot (the model is then unchanged).
template <class LowPrecisionImpl>
surgery::SurgeryReport apply_low_precision_norm(
    torch::nn::Module& model, Precision precision,
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
  using Original = typename LowPrecisionImpl::Original;
  if (precision != Precision::amp_fp16 && precision != Precision::amp_bf16) return {};
  return surgery::replace_module_classes<Original>(
      model,
      [](Original& layer, std::int64_t) {
        if (dynamic_cast<LowPrecisionImpl*>(&layer) != nullptr) return torch::nn::AnyModule();
        return torch::nn::AnyModule(
            torch::nn::ModuleHolder<LowPrecisionImpl>(LowPrecisionImpl::from_original(layer)));
      },
      optimizers);
}

/// With `precision` `amp_fp16` or `amp_bf16`, replaces every `torch::nn::LayerNorm` of `model` (not those already
/// `LPLayerNorm`) by a `modules::LPLayerNorm` with the same options and copied weight and bias, which under autocast
/// normalises in the low-precision type; the optimizers' groups trade the old parameters for the new ones. With
/// `fp32` it changes nothing and returns an empty report (Composer warns that it has no effect). Returns what was
/// replaced. Every replaced layer's parent must hold it in a `surgery::SurgicalModule` slot. Composer
/// counterpart: `composer.functional.apply_low_precision_layernorm(model, precision=None, optimizers=None)`.
/// \throws std::invalid_argument for a layer not in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_low_precision_layernorm(
    torch::nn::Module& model, Precision precision,
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  return apply_low_precision_norm<modules::LPLayerNormImpl>(model, precision, optimizers);
}

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
