#pragma once
/// \file
/// The options of an existing 2-d convolution, for modules that rebuild or wrap one (BlurPool's `BlurConv2d`,
/// Factorize's `FactorizedConv2d`).

#include <torch/nn/modules/conv.h>

namespace composer::modules::detail {

/// The options of an existing `torch::nn::Conv2d` (whose member holds the generic N-d form) as `Conv2dOptions`:
/// channels, kernel, stride, padding, dilation, groups, bias and padding mode.
inline torch::nn::Conv2dOptions conv2d_options_of(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  return torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
      .stride(o.stride())
      .padding(o.padding())
      .dilation(o.dilation())
      .groups(o.groups())
      .bias(o.bias())
      .padding_mode(o.padding_mode());
}

}  // namespace composer::modules::detail
