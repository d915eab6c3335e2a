#pragma once
/// \file
/// composer::modules::GatedLinearUnit — a transformer MLP with a gated hidden layer (Shazeer 2020, "GLU Variants
/// Improve Transformer", arXiv:2002.05202).

#include <cstdint>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <composer/models/gpt.hpp>
#include <composer/surgery/surgical_module.hpp>

namespace composer::modules {

/// wo(act(gated_layer(x)) ⊙ non_gated_layer(x)): slots `gated_layer` (Linear D → hidden), `non_gated_layer`
/// (Linear D → hidden) and `wo` (Linear hidden → D, with bias). The two input layers have biases only when asked
/// (Composer and the paper use none). Composer counterpart: `BERTGatedFFOutput` of
/// `composer.algorithms.gated_linear_units` (less its dropout, residual and LayerNorm, which the block around it
/// keeps here).
class GatedLinearUnitImpl : public surgery::SurgicalModule {
 public:
  /// A gated MLP D → hidden → D.
  GatedLinearUnitImpl(std::int64_t d_model, std::int64_t hidden, models::Activation activation,
                      bool gated_layer_bias = false, bool non_gated_layer_bias = false)
      : d_model_(d_model), hidden_(hidden), activation_(activation) {
    using torch::nn::Linear;
    using torch::nn::LinearOptions;
    if (d_model <= 0 || hidden <= 0)
      throw std::invalid_argument("composer: GatedLinearUnit needs positive sizes, got " + std::to_string(d_model) +
                                  " -> " + std::to_string(hidden));
    gated_ = register_slot("gated_layer", Linear(LinearOptions(d_model, hidden).bias(gated_layer_bias)));
    non_gated_ = register_slot("non_gated_layer", Linear(LinearOptions(d_model, hidden).bias(non_gated_layer_bias)));
    wo_ = register_slot("wo", Linear(hidden, d_model));
  }
  /// wo(act(gated_layer(x)) ⊙ non_gated_layer(x)).
  at::Tensor forward(const at::Tensor& x) {
    return call(wo_, models::apply_activation(activation_, call(gated_, x)) * call(non_gated_, x));
  }

  /// Model width.
  [[nodiscard]] std::int64_t d_model() const noexcept { return d_model_; }
  /// Hidden width.
  [[nodiscard]] std::int64_t hidden() const noexcept { return hidden_; }
  /// The gate's activation.
  [[nodiscard]] models::Activation activation() const noexcept { return activation_; }

 private:
  std::int64_t d_model_, hidden_;
  models::Activation activation_;
  Slot gated_, non_gated_, wo_;
};
/// Module holder of `GatedLinearUnitImpl`.
TORCH_MODULE(GatedLinearUnit);

}  // namespace composer::modules
