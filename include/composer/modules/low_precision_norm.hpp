#pragma once
/// \file
/// Layer and group normalisation that run in the autocast low-precision type instead of being promoted to fp32.
/// Composer counterpart: `composer.algorithms.low_precision_layernorm.LPLayerNorm` and
/// `composer.algorithms.low_precision_groupnorm.LPGroupNorm`.

#include <concepts>
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

/// What `LPLayerNorm` needs to know about `torch::nn::LayerNorm`: the layer it replaces, that layer's options, the
/// module's name and the norm it computes.
struct LayerNormKind {
  /// The LibTorch layer replaced.
  using Original = torch::nn::LayerNormImpl;
  /// Its options (normalized shape, eps, elementwise affinity).
  using Options = torch::nn::LayerNormOptions;
  /// The module's name, as `name()` reports it.
  static constexpr const char* module_name = "LPLayerNorm";
  /// The layer norm of `x` over the trailing `normalized_shape` dimensions.
  static at::Tensor normalize(const at::Tensor& x, const Options& options, const at::Tensor& weight,
                              const at::Tensor& bias) {
    return at::layer_norm(x, options.normalized_shape(), weight, bias, options.eps());
  }
};

/// What `LPGroupNorm` needs to know about `torch::nn::GroupNorm`: the layer it replaces, that layer's options, the
/// module's name and the norm it computes.
struct GroupNormKind {
  /// The LibTorch layer replaced.
  using Original = torch::nn::GroupNormImpl;
  /// Its options (groups, channels, eps, affinity).
  using Options = torch::nn::GroupNormOptions;
  /// The module's name, as `name()` reports it.
  static constexpr const char* module_name = "LPGroupNorm";
  /// The group norm of `x` ([N, C, ...]).
  static at::Tensor normalize(const at::Tensor& x, const Options& options, const at::Tensor& weight,
                              const at::Tensor& bias) {
    return at::group_norm(x, options.num_groups(), weight, bias, options.eps());
  }
};

/// A norm layer (`Kind`: `LayerNormKind` or `GroupNormKind`) with the parameters of an existing LibTorch layer of
/// that kind: the same weight and bias tensors and the same options. When autocast is on for the input's device,
/// the input, weight and bias are cast to the autocast type and the norm is computed in that type with autocast
/// off; otherwise it is exactly the LibTorch layer's computation. Used through its two names, `LPLayerNormImpl`
/// and `LPGroupNormImpl`. Composer counterpart: `LPLayerNorm` and `LPGroupNorm`.
template <class Kind>
class LowPrecisionNormImpl : public torch::nn::Module {
 public:
  /// The LibTorch layer this one replaces.
  using Original = typename Kind::Original;

  /// Takes over `layer`'s options and parameter tensors.
  explicit LowPrecisionNormImpl(const Original& layer) : torch::nn::Module(Kind::module_name), options(layer.options) {
    if (layer.weight.defined()) weight = register_parameter("weight", layer.weight);
    if (layer.bias.defined()) bias = register_parameter("bias", layer.bias);
  }
  /// A low-precision norm over `layer`'s options and parameter tensors, as a shared pointer for the module holder.
  /// Composer counterpart: `_to_LPLayerNorm` / `_to_LPGroupNorm`.
  static std::shared_ptr<LowPrecisionNormImpl> from_original(const Original& layer) {
    return std::make_shared<LowPrecisionNormImpl>(layer);
  }
  /// `from_original` for `LPLayerNormImpl`. Composer counterpart: `_to_LPLayerNorm`.
  static std::shared_ptr<LowPrecisionNormImpl> from_layernorm(const torch::nn::LayerNormImpl& layer)
    requires std::same_as<Kind, LayerNormKind>
  {
    return from_original(layer);
  }
  /// `from_original` for `LPGroupNormImpl`. Composer counterpart: `_to_LPGroupNorm`.
  static std::shared_ptr<LowPrecisionNormImpl> from_groupnorm(const torch::nn::GroupNormImpl& layer)
    requires std::same_as<Kind, GroupNormKind>
  {
    return from_original(layer);
  }

  /// The norm of `input`, in the autocast type under autocast.
  at::Tensor forward(const at::Tensor& input) {
    return detail::in_autocast_dtype(input, weight, bias, [&](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
      return Kind::normalize(x, options, w, b);
    });
  }

  /// The options of the original layer.
  typename Kind::Options options;
  /// The scale (the original's tensor), undefined without affinity.
  at::Tensor weight;
  /// The shift (the original's tensor), undefined without affinity.
  at::Tensor bias;
};

/// A layer norm that runs in the autocast type (see `LowPrecisionNormImpl`). Composer counterpart: `LPLayerNorm`.
using LPLayerNormImpl = LowPrecisionNormImpl<LayerNormKind>;
/// Module holder of `LPLayerNormImpl`.
TORCH_MODULE(LPLayerNorm);

/// A group norm that runs in the autocast type (see `LowPrecisionNormImpl`). Composer counterpart: `LPGroupNorm`.
using LPGroupNormImpl = LowPrecisionNormImpl<GroupNormKind>;
/// Module holder of `LPGroupNormImpl`.
TORCH_MODULE(LPGroupNorm);

}  // namespace composer::modules
