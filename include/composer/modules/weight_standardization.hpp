#pragma once
/// \file
/// Weight standardization (Qiao et al. 2019, "Micro-Batch Training with Batch-Channel Normalization and Weight
/// Standardization", arXiv:1903.10520): convolutions whose kernels are standardised per output channel before use.
/// Composer counterpart: `composer.algorithms.weight_standardization` (`WeightStandardizer` parametrization).

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace composer::modules {

/// `weight` standardised per output channel (dim 0): (W − mean) / sqrt(var + 1e-10), with the mean and biased
/// variance taken over all other dimensions. Composer counterpart: `weight_standardization._standardize_weights`.
inline at::Tensor standardize_weight(const at::Tensor& weight) {
  std::vector<std::int64_t> dims;
  for (std::int64_t d = 1; d < weight.dim(); ++d) dims.push_back(d);
  auto [var, mean] = at::var_mean(weight, dims, /*unbiased=*/false, /*keepdim=*/true);
  return (weight - mean) / at::sqrt(var + 1e-10);
}

/// A `D`-dimensional convolution (`ConvImpl` is `torch::nn::Conv1dImpl`, `Conv2dImpl` or `Conv3dImpl`, and this
/// type derives from it) run with its weight standardised (`standardize_weight`) at every forward pass. Built from
/// an existing convolution, it takes over its options and its weight and bias data (the same storage), so the
/// stored weight stays unstandardised, as under Composer's parametrization; surgery puts its parameters in place
/// of the original's in the optimizers. Composer counterpart: a `ConvNd` with
/// `parametrize.register_parametrization(conv, 'weight', WeightStandardizer())`.
template <class ConvImpl, std::size_t D>
class WSConvImpl : public ConvImpl {
 public:
  /// The holder type of the wrapped convolution.
  using ConvHolder = torch::nn::ModuleHolder<ConvImpl>;

  /// A standardised convolution with `conv`'s options, weight and bias data.
  explicit WSConvImpl(const ConvImpl& conv) : ConvImpl(options_of(conv)) {
    at::NoGradGuard no_grad;
    this->weight.set_data(conv.weight.data());
    if (conv.bias.defined()) this->bias.set_data(conv.bias.data());
  }
  /// A standardised convolution from the convolution `conv` holds. \throws std::invalid_argument for null.
  explicit WSConvImpl(const ConvHolder& conv) : WSConvImpl(deref(conv)) {}

  /// The convolution of `input` with the standardised kernel and the original bias, stride, padding (and padding
  /// mode), dilation and groups.
  at::Tensor forward(const at::Tensor& input) {
    const auto& o = this->options;
    const at::Tensor weight = standardize_weight(this->weight);
    const at::Tensor& bias = this->bias;
    const std::vector<std::int64_t> stride(o.stride()->begin(), o.stride()->end());
    const std::vector<std::int64_t> dilation(o.dilation()->begin(), o.dilation()->end());
    const std::vector<std::int64_t> no_output_padding(D, 0);
    if (holds_alternative<torch::enumtype::kSame>(o.padding()))
      return at::convolution(input, weight, bias, stride, same_padding(o), dilation, false, no_output_padding,
                             o.groups());
    if (holds_alternative<torch::enumtype::kValid>(o.padding()))
      return at::convolution(input, weight, bias, stride, std::vector<std::int64_t>(D, 0), dilation, false,
                             no_output_padding, o.groups());
    const auto& array = get<torch::ExpandingArray<D>>(o.padding());
    const std::vector<std::int64_t> pad(array->begin(), array->end());
    if (holds_alternative<torch::enumtype::kZeros>(o.padding_mode()))
      return at::convolution(input, weight, bias, stride, pad, dilation, false, no_output_padding, o.groups());
    namespace F = torch::nn::functional;
    std::vector<std::int64_t> reversed;  // last dimension first, each side twice, as F::pad expects
    for (std::size_t i = D; i-- > 0;) {
      reversed.push_back(pad[i]);
      reversed.push_back(pad[i]);
    }
    F::PadFuncOptions::mode_t mode = torch::kReflect;
    if (holds_alternative<torch::enumtype::kReplicate>(o.padding_mode())) mode = torch::kReplicate;
    if (holds_alternative<torch::enumtype::kCircular>(o.padding_mode())) mode = torch::kCircular;
    const at::Tensor padded = F::pad(input, F::PadFuncOptions(reversed).mode(mode));
    return at::convolution(padded, weight, bias, stride, std::vector<std::int64_t>(D, 0), dilation, false,
                           no_output_padding, o.groups());
  }

 private:
  static const ConvImpl& deref(const ConvHolder& conv) {
    if (!conv) throw std::invalid_argument("composer: WSConv needs a convolution to wrap, got null");
    return *conv;
  }
  static torch::nn::ConvOptions<D> options_of(const ConvImpl& conv) {
    const auto& o = conv.options;
    return torch::nn::ConvOptions<D>(o.in_channels(), o.out_channels(), o.kernel_size())
        .stride(o.stride())
        .padding(o.padding())
        .dilation(o.dilation())
        .groups(o.groups())
        .bias(conv.bias.defined())
        .padding_mode(o.padding_mode());
  }

  // "same" padding for odd effective kernels (even ones would need asymmetric padding: rejected).
  std::vector<std::int64_t> same_padding(const torch::nn::detail::ConvNdOptions<D>& o) const {
    std::vector<std::int64_t> pad;
    for (std::size_t i = 0; i < D; ++i) {
      const std::int64_t total = (*o.dilation())[i] * ((*o.kernel_size())[i] - 1);
      if (total % 2 != 0)
        throw std::invalid_argument("composer: WSConv supports padding='same' only for odd effective kernels");
      pad.push_back(total / 2);
    }
    return pad;
  }
};

/// Weight-standardised `torch::nn::Conv1d`. Composer counterpart: a parametrized `Conv1d`.
class WSConv1dImpl : public WSConvImpl<torch::nn::Conv1dImpl, 1> {
 public:
  using WSConvImpl::WSConvImpl;
};
/// Module holder of `WSConv1dImpl`.
TORCH_MODULE(WSConv1d);

/// Weight-standardised `torch::nn::Conv2d`. Composer counterpart: a parametrized `Conv2d`.
class WSConv2dImpl : public WSConvImpl<torch::nn::Conv2dImpl, 2> {
 public:
  using WSConvImpl::WSConvImpl;
};
/// Module holder of `WSConv2dImpl`.
TORCH_MODULE(WSConv2d);

/// Weight-standardised `torch::nn::Conv3d`. Composer counterpart: a parametrized `Conv3d`.
class WSConv3dImpl : public WSConvImpl<torch::nn::Conv3dImpl, 3> {
 public:
  using WSConvImpl::WSConvImpl;
};
/// Module holder of `WSConv3dImpl`.
TORCH_MODULE(WSConv3d);

}  // namespace composer::modules
