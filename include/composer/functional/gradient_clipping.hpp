#pragma once
/// \file
/// Gradient clipping by global norm, by value, or adaptively (AGC, Brock et al. 2021, arXiv:2102.06171):
/// `apply_gradient_clipping` and the unit-wise norms AGC uses.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <composer/functional/common.hpp>

namespace composer::functional {

/// The L2 norm of a parameter or gradient taken per output unit, as in Brock et al. (2021): over the whole
/// tensor for 0-D and 1-D tensors (a scalar result), otherwise over every dimension but the first, kept as
/// size-1 dimensions (shape [out, 1, ...], ready to broadcast). Composer counterpart:
/// `composer.algorithms.gradient_clipping.gradient_clipping._unitwise_norm`.
inline at::Tensor unitwise_norm(const at::Tensor& tensor) {
  if (tensor.dim() <= 1) return at::linalg_vector_norm(tensor, 2, std::vector<std::int64_t>{0}, /*keepdim=*/false);
  std::vector<std::int64_t> dims;
  for (std::int64_t d = 1; d < tensor.dim(); ++d) dims.push_back(d);
  return at::linalg_vector_norm(tensor, 2, dims, /*keepdim=*/true);
}

/// The AGC factor of each output unit: min(1, threshold·‖w‖ / ‖g‖) with unit-wise norms, where 0/0 counts
/// as 1 (and x/0 for x > 0 as 1 after the clamp). Composer counterpart:
/// `composer.algorithms.gradient_clipping.gradient_clipping._get_clipped_gradient_coeff`.
inline at::Tensor adaptive_clipping_coefficient(const at::Tensor& weights, const at::Tensor& grad,
                                                double clipping_threshold) {
  const at::Tensor max_norm = unitwise_norm(weights.detach()) * clipping_threshold;
  return (max_norm / unitwise_norm(grad.detach())).nan_to_num_(1.0).clamp_max_(1.0);
}

/// Throws std::invalid_argument unless `clipping_type` is "adaptive", "norm" or "value" and `clipping_threshold`
/// is >= 0; shared by `apply_gradient_clipping` and the `algorithms::GradientClipping` policy. Composer
/// counterpart: the arguments `composer.functional.apply_gradient_clipping` accepts.
inline void check_clipping_arguments(std::string_view clipping_type, double clipping_threshold) {
  if (clipping_type != "norm" && clipping_type != "value" && clipping_type != "adaptive")
    checks::fail("clipping_type must be 'adaptive', 'norm' or 'value', got '" + std::string(clipping_type) + "'");
  if (!(clipping_threshold >= 0.0))
    checks::fail("clipping_threshold must be a non-negative number, got " + checks::num(clipping_threshold));
}

/// Clips the gradients of `parameters` in place (parameters without a gradient are skipped):
/// - `"norm"`: scales every gradient by min(1, threshold / (‖g‖ + 1e-6)), ‖g‖ the L2 norm of all gradients
///   together (`torch.nn.utils.clip_grad_norm_`);
/// - `"value"`: clamps every gradient element to [−threshold, threshold] (`clip_grad_value_`);
/// - `"adaptive"`: per parameter and per output unit, multiplies the gradient by
///   min(1, threshold·‖w‖/‖g‖) with unit-wise norms (see `unitwise_norm`).
/// \throws std::invalid_argument for another clipping_type or a negative or NaN threshold.
/// Composer counterpart: `composer.functional.apply_gradient_clipping(model, clipping_type,
/// clipping_threshold, fsdp_enabled=False)`.
inline void apply_gradient_clipping(const std::vector<at::Tensor>& parameters, std::string_view clipping_type,
                                    double clipping_threshold) {
  check_clipping_arguments(clipping_type, clipping_threshold);
  at::NoGradGuard no_grad;
  if (clipping_type == "value") {
    for (const auto& p : parameters)
      if (p.grad().defined()) p.grad().clamp_(-clipping_threshold, clipping_threshold);
  } else if (clipping_type == "norm") {
    std::vector<at::Tensor> norms;
    for (const auto& p : parameters)
      if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad(), 2));
    if (norms.empty()) return;
    const at::Tensor total = norms.size() == 1 ? norms.front() : at::linalg_vector_norm(at::stack(norms), 2);
    const at::Tensor coefficient = (clipping_threshold / (total + 1e-6)).clamp_max(1.0);
    for (const auto& p : parameters)
      if (p.grad().defined()) p.grad().mul_(coefficient.to(p.grad().device()));
  } else {
    for (const auto& p : parameters) {
      if (!p.grad().defined()) continue;
      p.grad().mul_(adaptive_clipping_coefficient(p, p.grad(), clipping_threshold));
    }
  }
}

/// Clips the gradients of every parameter of `model` (see the overload on parameters).
/// Composer counterpart: `composer.functional.apply_gradient_clipping`.
inline void apply_gradient_clipping(const torch::nn::Module& model, std::string_view clipping_type,
                                    double clipping_threshold) {
  apply_gradient_clipping(model.parameters(/*recurse=*/true), clipping_type, clipping_threshold);
}

}  // namespace composer::functional
