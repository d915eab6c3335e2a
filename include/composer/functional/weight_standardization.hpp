#pragma once
/// \file
/// `apply_weight_standardization`: convolutions that standardise their kernels, put into a model by surgery
/// (Qiao et al. 2019, arXiv:1903.10520). Composer counterpart: `composer.functional.apply_weight_standardization`.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/common.hpp>
#include <composer/modules/weight_standardization.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// Standardises the convolution kernels of `model`: of its `torch::nn::Conv1d`, `Conv2d` and `Conv3d` layers, in
/// the order of `named_modules()` (the order the layers were registered in, which for `models::ResNet` is the
/// order they run in), all but the last `n_last_layers_ignore` convolve with their standardised weight from now
/// on (`modules::WSConv1d/2d/3d`, keeping the same weight and bias tensors, so optimizers are unaffected;
/// `optimizers` is accepted for symmetry with the other surgeries). Convolutions already standardised count
/// among the layers but are not standardised twice. Returns what was replaced. Every replaced layer's parent must
/// hold it in a `surgery::SurgicalModule` slot. Composer counterpart:
/// `composer.functional.apply_weight_standardization(module, n_last_layers_ignore=0)`, which returns the number
/// of standardised layers (`count()` of the report, here).
/// \throws std::invalid_argument for n_last_layers_ignore < 0 or a layer not in a slot (the model is then
///         unchanged).
inline surgery::SurgeryReport apply_weight_standardization(
    torch::nn::Module& model, std::int64_t n_last_layers_ignore = 0,
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  using torch::nn::Conv1dImpl;
  using torch::nn::Conv2dImpl;
  using torch::nn::Conv3dImpl;
  if (n_last_layers_ignore < 0)
    detail::fail("n_last_layers_ignore must be >= 0, got " + std::to_string(n_last_layers_ignore));
  std::vector<const torch::nn::Module*> convs;
  for (const auto& node : surgery::detail::tree_of(model)) {
    const torch::nn::Module* m = node.module.get();
    if (dynamic_cast<const Conv1dImpl*>(m) || dynamic_cast<const Conv2dImpl*>(m) || dynamic_cast<const Conv3dImpl*>(m))
      convs.push_back(m);
  }
  const std::int64_t target = std::max<std::int64_t>(static_cast<std::int64_t>(convs.size()) - n_last_layers_ignore, 0);
  std::unordered_set<const torch::nn::Module*> chosen(convs.begin(), convs.begin() + target);
  auto pick = [&](const torch::nn::Module& m, bool already) { return chosen.count(&m) != 0 && !already; };

  surgery::SurgeryReport report;
  report += surgery::replace_module_classes<Conv1dImpl>(
      model,
      [&](Conv1dImpl& conv, std::int64_t) {
        if (!pick(conv, dynamic_cast<modules::WSConv1dImpl*>(&conv) != nullptr)) return torch::nn::AnyModule();
        return torch::nn::AnyModule(modules::WSConv1d(std::make_shared<modules::WSConv1dImpl>(conv)));
      },
      optimizers);
  report += surgery::replace_module_classes<Conv2dImpl>(
      model,
      [&](Conv2dImpl& conv, std::int64_t) {
        if (!pick(conv, dynamic_cast<modules::WSConv2dImpl*>(&conv) != nullptr)) return torch::nn::AnyModule();
        return torch::nn::AnyModule(modules::WSConv2d(std::make_shared<modules::WSConv2dImpl>(conv)));
      },
      optimizers);
  report += surgery::replace_module_classes<Conv3dImpl>(
      model,
      [&](Conv3dImpl& conv, std::int64_t) {
        if (!pick(conv, dynamic_cast<modules::WSConv3dImpl*>(&conv) != nullptr)) return torch::nn::AnyModule();
        return torch::nn::AnyModule(modules::WSConv3d(std::make_shared<modules::WSConv3dImpl>(conv)));
      },
      optimizers);
  return report;
}

}  // namespace composer::functional
