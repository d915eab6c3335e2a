#pragma once
/// \file
/// Layer and group normalisation that run in the autocast low-precision type instead of being promoted to fp32.
/// Composer counterpart: `composer.algorithms.low_precision_layernorm.LPLayerNorm` and
/// `composer.algorithms.low_precision_groupnorm.LPGroupNorm`.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/version.h>

namespace composer::modules {

namespace detail {

/// The autocast type in force for tensors on `device`, if autocast is on there. Composer counterpart:
/// `_cast_if_autocast_enabled`'s test.
inline std::optional<at::ScalarType> autocast_dtype_for(const c10::Device& device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (device.is_cuda() || device.is_cpu())
    if (at::autocast::is_autocast_enabled(device.type())) return at::autocast::get_autocast_dtype(device.type());
#else
  if (device.is_cuda() && at::autocast::is_enabled()) return at::autocast::get_autocast_gpu_dtype();
  if (device.is_cpu() && at::autocast::is_cpu_enabled()) return at::autocast::get_autocast_cpu_dtype();
#endif
  return std::nullopt;
}

/// `t` in `dtype` (an undefined tensor stays undefined).
inline at::Tensor cast_if_defined(const at::Tensor& t, at::ScalarType dtype) {
  return t.defined() ? t.to(dtype) : t;
}

/// `norm(x, weight, bias)` computed in the autocast type when autocast is on for `input`'s device (input, weight
/// and bias cast to it, autocast off inside), else `norm(input, weight, bias)` unchanged. Composer counterpart:
/// the body shared by `LPLayerNorm.forward` and `LPGroupNorm.forward`.
template <class Norm>
at::Tensor in_autocast_dtype(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, Norm&& norm) {
  if (const auto dtype = autocast_dtype_for(input.device())) {
    const at::Tensor x = input.to(*dtype);
    const at::Tensor w = cast_if_defined(weight, *dtype);
    const at::Tensor b = cast_if_defined(bias, *dtype);
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    return norm(x, w, b);
  }
  return norm(input, weight, bias);
}

}  // namespace detail

/// A layer norm with the parameters of an existing `torch::nn::LayerNorm` (the same weight and bias tensors, same
/// normalized shape and eps). When autocast is on for the input's device, the input, weight and bias are cast to
/// the autocast type and the norm is computed in that type with autocast off; otherwise it is exactly
/// `torch::nn::LayerNorm`'s computation. Composer counterpart: `LPLayerNorm` (built by `_to_LPLayerNorm`).
class LPLayerNormImpl : public torch::nn::Module {
 public:
  /// Takes over `layer`'s options and parameter tensors.
  explicit LPLayerNormImpl(const torch::nn::LayerNormImpl& layer) : torch::nn::Module("LPLayerNorm"), options(layer.options) {
    if (layer.weight.defined()) weight = register_parameter("weight", layer.weight);
    if (layer.bias.defined()) bias = register_parameter("bias", layer.bias);
  }
  /// An `LPLayerNorm` over `layer`'s options and parameter tensors, as a shared pointer for the module holder.
  /// Composer counterpart: `_to_LPLayerNorm`.
  static std::shared_ptr<LPLayerNormImpl> from_layernorm(const torch::nn::LayerNormImpl& layer) {
    return std::make_shared<LPLayerNormImpl>(layer);
  }

  /// The layer norm of `input` over the trailing `normalized_shape` dimensions.
  at::Tensor forward(const at::Tensor& input) {
    return detail::in_autocast_dtype(input, weight, bias, [&](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
      return at::layer_norm(x, options.normalized_shape(), w, b, options.eps());
    });
  }

  /// The normalized shape, eps and affinity of the original layer.
  torch::nn::LayerNormOptions options;
  /// The scale (the original's tensor), undefined without elementwise affinity.
  at::Tensor weight;
  /// The shift (the original's tensor), undefined without elementwise affinity.
  at::Tensor bias;
};
/// Module holder of `LPLayerNormImpl`.
TORCH_MODULE(LPLayerNorm);

/// A group norm with the parameters of an existing `torch::nn::GroupNorm` (the same weight and bias tensors, same
/// groups, channels and eps). Under autocast it computes in the autocast type with autocast off, as `LPLayerNorm`;
/// otherwise it is exactly `torch::nn::GroupNorm`'s computation. Composer counterpart: `LPGroupNorm`.
class LPGroupNormImpl : public torch::nn::Module {
 public:
  /// Takes over `layer`'s options and parameter tensors.
  explicit LPGroupNormImpl(const torch::nn::GroupNormImpl& layer) : torch::nn::Module("LPGroupNorm"), options(layer.options) {
    if (layer.weight.defined()) weight = register_parameter("weight", layer.weight);
    if (layer.bias.defined()) bias = register_parameter("bias", layer.bias);
  }
  /// An `LPGroupNorm` over `layer`'s options and parameter tensors, as a shared pointer for the module holder.
  /// Composer counterpart: `_to_LPGroupNorm`.
  static std::shared_ptr<LPGroupNormImpl> from_groupnorm(const torch::nn::GroupNormImpl& layer) {
    return std::make_shared<LPGroupNormImpl>(layer);
  }

  /// The group norm of `input` ([N, C, ...]).
  at::Tensor forward(const at::Tensor& input) {
    return detail::in_autocast_dtype(input, weight, bias, [&](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
      return at::group_norm(x, options.num_groups(), w, b, options.eps());
    });
  }

  /// The groups, channels, eps and affinity of the original layer.
  torch::nn::GroupNormOptions options;
  /// The per-channel scale (the original's tensor), undefined without affinity.
  at::Tensor weight;
  /// The per-channel shift (the original's tensor), undefined without affinity.
  at::Tensor bias;
};
/// Module holder of `LPGroupNormImpl`.
TORCH_MODULE(LPGroupNorm);

}  // namespace composer::modules
