#pragma once
/// \file
/// `apply_blurpool`: anti-aliased downsampling put into a model by surgery (Zhang 2019,
/// http://proceedings.mlr.press/v97/zhang19a.html). Composer counterpart: `composer.functional.apply_blurpool`.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/surgery_common.hpp>
#include <composer/modules/blurpool.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// Adds anti-aliasing filters to a model's downsampling layers: with `replace_maxpools`, every
/// `torch::nn::MaxPool2d` becomes a `modules::BlurMaxPool2d` with the same options; with `replace_convs`, every
/// `torch::nn::Conv2d` with a stride above 1 and at least `min_channels` input channels becomes a
/// `modules::BlurConv2d` (weights copied, blur before the convolution when `blur_first`). Convolutions already
/// inside a BlurConv2d are left alone, so applying it twice changes nothing more. The optimizers' groups trade
/// the replaced convolutions' parameters for the new ones. Returns what was replaced (pooling layers first).
/// Every replaced module's parent must hold it in a `surgery::SurgicalModule` slot (as `models::ResNet` does).
/// Composer counterpart: `composer.functional.apply_blurpool(model, replace_convs=True, replace_maxpools=True,
/// blur_first=True, min_channels=16, optimizers=None)`.
/// \throws std::invalid_argument when a module to replace is not in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_blurpool(torch::nn::Module& model, bool replace_convs = true,
                                             bool replace_maxpools = true, bool blur_first = true,
                                             std::int64_t min_channels = 16,
                                             const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  surgery::SurgeryReport report;
  if (replace_maxpools) {
    report += surgery::replace_module_classes<torch::nn::MaxPool2dImpl>(
        model,
        [](torch::nn::MaxPool2dImpl& pool, std::int64_t) {
          return torch::nn::AnyModule(modules::BlurMaxPool2d(modules::BlurMaxPool2dImpl::from_maxpool2d(pool)));
        },
        optimizers);
  }
  if (replace_convs) {
    const auto already = detail::wrapped_modules<modules::BlurConv2dImpl, torch::nn::Conv2dImpl>(model);
    report += surgery::replace_module_classes<torch::nn::Conv2dImpl>(
        model,
        [&](torch::nn::Conv2dImpl& conv, std::int64_t) {
          const auto& stride = *conv.options.stride();
          const bool strided = *std::max_element(stride.begin(), stride.end()) > 1;
          if (!strided || conv.options.in_channels() < min_channels || already.count(&conv) != 0)
            return torch::nn::AnyModule();
          return torch::nn::AnyModule(modules::BlurConv2d(modules::BlurConv2dImpl::from_conv2d(conv, blur_first)));
        },
        optimizers);
  }
  return report;
}

/// `apply_blurpool` with the optimizers first: `apply_blurpool(*model, {sgd})`.
inline surgery::SurgeryReport apply_blurpool(torch::nn::Module& model,
                                             const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers,
                                             bool replace_convs = true, bool replace_maxpools = true,
                                             bool blur_first = true, std::int64_t min_channels = 16) {
  return apply_blurpool(model, replace_convs, replace_maxpools, blur_first, min_channels, optimizers);
}

}  // namespace composer::functional
