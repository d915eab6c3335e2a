#pragma once
/// \file
/// `apply_channels_last`: a model's 4-D weights and buffers in the channels-last (NHWC) memory format.
/// Composer counterpart: `composer.functional.apply_channels_last`.

#include <cstddef>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace composer::functional {

/// Stores every 4-D parameter and buffer of `model` (and a 4-D parameter's gradient, if it has one)
/// channels-last contiguous, in place: each keeps its tensor object (`set_data`), so optimizers, references
/// and parameter groups still hold the same parameters; values and shapes are unchanged. Tensors of other
/// ranks are left alone. Returns how many parameters and buffers it visited with 4 dimensions. Composer
/// counterpart: `composer.functional.apply_channels_last(model)` (`model.to(memory_format=torch.channels_last)`,
/// which LibTorch's `Module::to` cannot do).
inline std::size_t apply_channels_last(torch::nn::Module& model) {
  std::size_t converted = 0;
  at::NoGradGuard no_grad;
  auto convert = [&](at::Tensor& t, bool parameter) {
    if (!t.defined() || t.dim() != 4) return;
    ++converted;
    if (!t.is_contiguous(at::MemoryFormat::ChannelsLast)) t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
    if (parameter && t.grad().defined() && t.grad().dim() == 4 &&
        !t.grad().is_contiguous(at::MemoryFormat::ChannelsLast))
      t.mutable_grad() = t.grad().contiguous(at::MemoryFormat::ChannelsLast);
  };
  for (auto& p : model.parameters(/*recurse=*/true)) convert(p, /*parameter=*/true);
  for (auto& b : model.buffers(/*recurse=*/true)) convert(b, /*parameter=*/false);
  return converted;
}

}  // namespace composer::functional
