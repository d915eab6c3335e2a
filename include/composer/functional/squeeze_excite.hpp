#pragma once
/// \file
/// `apply_squeeze_excite`: Squeeze-and-Excitation gates added after a model's convolutions by surgery (Hu et al.
/// 2018, arXiv:1709.01507). Composer counterpart: `composer.functional.apply_squeeze_excite`.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/surgery_common.hpp>
#include <composer/modules/squeeze_excite.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// Puts a squeeze-excite gate after every `torch::nn::Conv2d` of `model` with min(in_channels, out_channels) ≥
/// `min_channels`: the convolution becomes a `modules::SqueezeExciteConv2d` holding that same convolution (its
/// parameters unchanged) and a `modules::SqueezeExcite2d` over its output channels with `latent_channels` hidden
/// units (a fraction of the output channels when below 1). Convolutions already inside a SqueezeExciteConv2d are
/// left alone. The gates' parameters join the optimizers' parameter group (with one optimizer of one group, or
/// the group of a replaced parameter). Returns what was replaced. Every replaced convolution's parent must hold
/// it in a `surgery::SurgicalModule` slot (as `models::ResNet` does). Composer counterpart:
/// `composer.functional.apply_squeeze_excite(model, latent_channels=64, min_channels=128, optimizers=None)`.
/// \throws std::invalid_argument for latent_channels that is not positive (or leaves a gate without hidden units),
///         or a convolution not in a slot; the model is then unchanged.
inline surgery::SurgeryReport apply_squeeze_excite(
    torch::nn::Module& model, double latent_channels = 64, std::int64_t min_channels = 128,
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  const auto already = detail::wrapped_modules<modules::SqueezeExciteConv2dImpl, torch::nn::Conv2dImpl>(model);
  // Every gate's width is checked before the first replacement, so a bad latent_channels changes nothing.
  for (const auto& found : surgery::find_modules<torch::nn::Conv2dImpl>(model)) {
    const auto& o = found.module->options;
    if (std::min(o.in_channels(), o.out_channels()) >= min_channels && already.count(found.module.get()) == 0)
      (void)modules::squeeze_excite_latent_channels(o.out_channels(), latent_channels);
  }
  if (!(latent_channels > 0.0)) (void)modules::squeeze_excite_latent_channels(1, latent_channels);
  return surgery::replace_module_classes<torch::nn::Conv2dImpl>(
      model,
      [&](torch::nn::Conv2dImpl& conv, std::int64_t) {
        if (std::min(conv.options.in_channels(), conv.options.out_channels()) < min_channels ||
            already.count(&conv) != 0)
          return torch::nn::AnyModule();
        auto self = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(conv.shared_from_this());
        return torch::nn::AnyModule(modules::SqueezeExciteConv2d(torch::nn::Conv2d(self), latent_channels));
      },
      optimizers);
}

}  // namespace composer::functional
