#pragma once
/// \file
/// `apply_ghost_batchnorm`: batch normalisation over small "ghost" batches put into a model by surgery (Hoffer et
/// al. 2017, arXiv:1705.08741). Composer counterpart: `composer.functional.apply_ghost_batchnorm`.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include <composer/functional/common.hpp>
#include <composer/functional/surgery_common.hpp>
#include <composer/modules/ghost_batchnorm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

namespace detail {
template <class BatchNormT, class GhostImpl, class GhostHolder>
surgery::SurgeryReport ghost_batchnorm_pass(torch::nn::Module& model, std::int64_t ghost_batch_size,
                                            const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
  const auto already = wrapped_modules<GhostImpl, BatchNormT>(model);
  return surgery::replace_module_classes<BatchNormT>(
      model,
      [&](BatchNormT& bn, std::int64_t) {
        if (already.count(&bn) != 0) return torch::nn::AnyModule();
        auto self = std::dynamic_pointer_cast<BatchNormT>(bn.shared_from_this());
        return torch::nn::AnyModule(GhostHolder(std::make_shared<GhostImpl>(self, ghost_batch_size)));
      },
      optimizers);
}
}  // namespace detail

/// Wraps every `torch::nn::BatchNorm1d`, `BatchNorm2d` and `BatchNorm3d` of `model` in a
/// `modules::GhostBatchNorm1d/2d/3d` that normalises chunks of `ghost_batch_size` samples separately. The batch
/// norm layers themselves are kept (inside the wrapper, under `batchnorm`), with their parameters and running
/// statistics, so the optimizers keep training the same tensors; layers already wrapped are left alone. Returns
/// what was replaced (1-d, then 2-d, then 3-d layers). Every replaced layer's parent must hold it in a
/// `surgery::SurgicalModule` slot (as `models::ResNet` does). Composer counterpart:
/// `composer.functional.apply_ghost_batchnorm(model, ghost_batch_size=32, optimizers=None)`.
/// \throws std::invalid_argument for ghost_batch_size <= 0, or a layer not in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_ghost_batchnorm(
    torch::nn::Module& model, std::int64_t ghost_batch_size = 32,
    const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  if (ghost_batch_size <= 0) detail::fail("ghost_batch_size must be positive, got " + std::to_string(ghost_batch_size));
  surgery::SurgeryReport report;
  report += detail::ghost_batchnorm_pass<torch::nn::BatchNorm1dImpl, modules::GhostBatchNorm1dImpl,
                                         modules::GhostBatchNorm1d>(model, ghost_batch_size, optimizers);
  report += detail::ghost_batchnorm_pass<torch::nn::BatchNorm2dImpl, modules::GhostBatchNorm2dImpl,
                                         modules::GhostBatchNorm2d>(model, ghost_batch_size, optimizers);
  report += detail::ghost_batchnorm_pass<torch::nn::BatchNorm3dImpl, modules::GhostBatchNorm3dImpl,
                                         modules::GhostBatchNorm3d>(model, ghost_batch_size, optimizers);
  return report;
}

/// `apply_ghost_batchnorm` with the optimizers first: `apply_ghost_batchnorm(*model, {sgd}, 16)`.
inline surgery::SurgeryReport apply_ghost_batchnorm(
    torch::nn::Module& model, const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers,
    std::int64_t ghost_batch_size = 32) {
  return apply_ghost_batchnorm(model, ghost_batch_size, optimizers);
}

}  // namespace composer::functional
