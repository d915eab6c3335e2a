#pragma once
/// \file
/// `apply_gyro_dropout`: dropout layers replaced by gyro dropout (Lee et al. 2022, MLSys). Composer counterpart:
/// `composer.functional.apply_gyro_dropout`.

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/dropout.h>

#include <composer/modules/gyro_dropout.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// Replaces every `torch::nn::Dropout` of `model` by a `modules::GyroDropout` with these settings (the dropout's
/// own probability is not used: `p` applies). `iters_per_epoch` and `max_epoch` describe the training run: the
/// active masks are redrawn every int(iters_per_epoch · max_epoch / sigma) · tau training steps. Dropout layers
/// have no parameters, so no optimizer is involved. Returns what was replaced (empty when the model has no
/// dropout; Composer then warns). Every replaced layer's parent must hold it in a `surgery::SurgicalModule` slot.
/// Composer counterpart: `composer.functional.apply_gyro_dropout(model, iters_per_epoch, max_epoch, p, sigma, tau)`.
/// \throws std::invalid_argument for p outside [0, 1), sigma, tau, iters_per_epoch or max_epoch below 1,
///         iters_per_epoch · max_epoch < sigma, or a layer not in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_gyro_dropout(torch::nn::Module& model, std::int64_t iters_per_epoch,
                                                 std::int64_t max_epoch, double p, std::int64_t sigma,
                                                 std::int64_t tau) {
  const modules::GyroDropoutOptions options{
      .iters_per_epoch = iters_per_epoch, .max_epoch = max_epoch, .p = p, .sigma = sigma, .tau = tau};
  modules::GyroDropoutImpl::check(options);
  return surgery::replace_module_classes<torch::nn::DropoutImpl>(model, [&](torch::nn::DropoutImpl&, std::int64_t) {
    return torch::nn::AnyModule(modules::GyroDropout(options));
  });
}

}  // namespace composer::functional
