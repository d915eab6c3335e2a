#pragma once
/// \file
/// `apply_stochastic_depth`: residual blocks made stochastic by surgery (Huang et al. 2016, arXiv:1603.09382),
/// and the per-layer drop rates. Composer counterpart: `composer.functional.apply_stochastic_depth`.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/common.hpp>
#include <composer/functional/surgery_common.hpp>
#include <composer/models/resnet.hpp>
#include <composer/modules/stochastic_depth.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// The `target_layer_name` of `models::BasicBlock`, the block StochasticDepth makes stochastic here. Composer
/// counterpart: the `'ResNetBottleneck'` key of `_STOCHASTIC_LAYER_MAPPING` (torchvision's Bottleneck).
inline constexpr std::string_view resnet_basic_block = "ResNetBasicBlock";

/// Composer's checks of StochasticDepth's arguments, in its order (std::invalid_argument for the first that
/// fails); shared by `apply_stochastic_depth` and the `algorithms::StochasticDepth` policy. Composer counterpart:
/// `stochastic_depth._validate_stochastic_hparams`.
inline void check_stochastic_depth_arguments(std::string_view target_layer_name, std::string_view stochastic_method,
                                             double drop_rate, std::string_view drop_distribution,
                                             double drop_warmup = 0.0) {
  (void)modules::stochastic_method_from_string(stochastic_method);
  if (target_layer_name != resnet_basic_block)
    checks::fail("target_layer_name '" + std::string(target_layer_name) + "' is not supported; it must be one of ['" +
                 std::string(resnet_basic_block) + "'] (models::BasicBlock)");
  if (!(drop_rate >= 0.0 && drop_rate <= 1.0))
    checks::fail("drop_rate must be between 0 and 1, got " + checks::num(drop_rate));
  if (drop_distribution != "linear" && drop_distribution != "uniform")
    checks::fail("drop_distribution must be one of 'uniform', 'linear', got '" + std::string(drop_distribution) + "'");
  if (!(drop_warmup >= 0.0) || !std::isfinite(drop_warmup))
    checks::fail("drop_warmup must be a finite fraction of training >= 0, got " + checks::num(drop_warmup));
  if (stochastic_method == "sample" && drop_warmup != 0.0)
    checks::fail("drop_warmup cannot be used with the 'sample' stochastic_method, got drop_warmup " +
                 checks::num(drop_warmup));
}

/// The drop rate of the stochastic layer at `index` (0-based, in depth order) of `count`: `drop_rate` for the
/// "uniform" distribution, (index + 1) / count · drop_rate for "linear" (so the last layer gets `drop_rate`).
/// Composer counterpart: the rate computed in `make_resnet_bottleneck_stochastic` and `_update_drop_rate`.
/// \throws std::invalid_argument for another distribution.
[[nodiscard]] inline double stochastic_layer_drop_rate(std::int64_t index, std::int64_t count, double drop_rate,
                                                       std::string_view drop_distribution = "linear") {
  if (drop_distribution == "uniform") return drop_rate;
  if (drop_distribution != "linear")
    detail::fail("drop_distribution must be one of 'uniform', 'linear', got '" + std::string(drop_distribution) + "'");
  return static_cast<double>(index + 1) / static_cast<double>(count) * drop_rate;
}

/// Makes every `models::BasicBlock` of `model` stochastic: each becomes a `modules::StochasticBasicBlock` wrapping
/// it (same parameters) with `stochastic_method` ("block" or "sample") and the rate of its depth, out of
/// `drop_rate`, by `drop_distribution` (see `stochastic_layer_drop_rate`; blocks counted in depth order). Blocks
/// already wrapped are left as they are. The parameter set does not change, so `optimizers` (accepted for a
/// uniform interface) keep their groups. Returns what was replaced. Each block's parent must hold it in a
/// `surgery::SurgicalModule` slot (as `models::ResNet`'s stages do). Composer counterpart:
/// `composer.functional.apply_stochastic_depth(model, target_layer_name, stochastic_method='block',
/// drop_rate=0.2, drop_distribution='linear')`.
/// \throws std::invalid_argument for a `target_layer_name` other than "ResNetBasicBlock", an unknown method or
///         distribution, or a drop rate outside [0, 1]; the model is then unchanged.
inline surgery::SurgeryReport apply_stochastic_depth(
    torch::nn::Module& model, std::string_view target_layer_name, std::string_view stochastic_method = "block",
    double drop_rate = 0.2, std::string_view drop_distribution = "linear",
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  check_stochastic_depth_arguments(target_layer_name, stochastic_method, drop_rate, drop_distribution);
  const auto method = modules::stochastic_method_from_string(stochastic_method);
  const auto count = static_cast<std::int64_t>(surgery::count_module_instances<models::BasicBlockImpl>(model));
  const auto already = detail::wrapped_modules<modules::StochasticBasicBlockImpl, models::BasicBlockImpl>(model);
  return surgery::replace_module_classes<models::BasicBlockImpl>(
      model,
      [&](models::BasicBlockImpl& block, std::int64_t index) {
        if (already.count(&block) != 0) return torch::nn::AnyModule();
        auto self = std::dynamic_pointer_cast<models::BasicBlockImpl>(block.shared_from_this());
        const double rate = stochastic_layer_drop_rate(index, count, drop_rate, drop_distribution);
        return torch::nn::AnyModule(modules::StochasticBasicBlock(models::BasicBlock(self), rate, method));
      },
      optimizers);
}

/// Sets the drop rate of every `modules::StochasticBasicBlock` in `model` from a new base `drop_rate`,
/// distributed over the blocks (in depth order) by `drop_distribution`. Returns how many blocks were set.
/// Composer counterpart: `stochastic_depth._update_drop_rate` (used during StochasticDepth's warm-up).
/// \throws std::invalid_argument for a drop rate outside [0, 1] or an unknown distribution.
inline std::int64_t set_stochastic_drop_rates(torch::nn::Module& model, double drop_rate,
                                              std::string_view drop_distribution = "linear") {
  if (!(drop_rate >= 0.0 && drop_rate <= 1.0)) detail::fail("drop_rate must be between 0 and 1, got " + detail::num(drop_rate));
  const auto blocks = surgery::find_modules<modules::StochasticBasicBlockImpl>(model);
  const auto count = static_cast<std::int64_t>(blocks.size());
  for (std::int64_t i = 0; i < count; ++i)
    blocks[static_cast<std::size_t>(i)].module->set_drop_rate(
        stochastic_layer_drop_rate(i, count, drop_rate, drop_distribution));
  return count;
}

}  // namespace composer::functional
