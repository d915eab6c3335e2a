#pragma once
/// \file
/// `apply_gated_linear_units`: a transformer's MLPs replaced by gated linear units by surgery (Shazeer 2020,
/// arXiv:2002.05202). Composer counterpart: `composer.functional.apply_gated_linear_units`.

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/common.hpp>
#include <composer/models/gpt.hpp>
#include <composer/modules/gated_linear_units.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// The hidden width of the gated unit that replaces an MLP of `hidden` units: `hidden` itself, or with
/// `match_parameter_count` ⌊2/3·hidden⌉ rounded to a multiple of 8 (at least 8), so that the three matrices of
/// the gated unit hold about the two of the MLP — the scaling Composer's GatedLinearUnits documentation uses for
/// iso-parameter comparisons, kept a multiple of eight as it advises for throughput.
[[nodiscard]] inline std::int64_t gated_linear_unit_hidden(std::int64_t hidden, bool match_parameter_count) {
  if (!match_parameter_count) return hidden;
  const auto scaled = static_cast<std::int64_t>(std::llround(2.0 * static_cast<double>(hidden) / 3.0 / 8.0)) * 8;
  return scaled < 8 ? 8 : scaled;
}

/// Replaces every `models::TransformerMLP` of `model` by a `modules::GatedLinearUnit` of the same width: activation
/// `act_fn` (unset: the MLP's own, as Composer takes the model's), biases on the gated and non-gated layers as
/// asked, hidden width `gated_linear_unit_hidden(mlp.hidden(), match_parameter_count)`. The new layers are freshly
/// initialised; the optimizers trade the MLPs' parameters for the new ones. Gated units already in place are left
/// alone, so a second application changes nothing. Returns what was replaced. Composer counterpart:
/// `composer.functional.apply_gated_linear_units(model, optimizers, act_fn=None, gated_layer_bias=False,
/// non_gated_layer_bias=False)` (which acts on Hugging Face BERT's `BertIntermediate` + `BertOutput`).
/// \throws std::invalid_argument for an MLP not held in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_gated_linear_units(
    torch::nn::Module& model, const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {},
    std::optional<models::Activation> act_fn = std::nullopt, bool gated_layer_bias = false,
    bool non_gated_layer_bias = false, bool match_parameter_count = false) {
  return surgery::replace_module_classes<models::TransformerMLPImpl>(
      model,
      [&](models::TransformerMLPImpl& mlp, std::int64_t) {
        return torch::nn::AnyModule(modules::GatedLinearUnit(
            mlp.d_model(), gated_linear_unit_hidden(mlp.hidden(), match_parameter_count),
            act_fn.value_or(mlp.activation()), gated_layer_bias, non_gated_layer_bias));
      },
      optimizers);
}

}  // namespace composer::functional
