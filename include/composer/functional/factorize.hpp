#pragma once
/// \file
/// `apply_factorization`: convolution and linear layers split into low-rank pairs by surgery. Composer
/// counterpart: `composer.functional.apply_factorization`.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>

#include <composer/modules/factorize.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// Replaces layers of `model` by low-rank factorized pairs initialised from their truncated SVD (so each
/// replacement is the best approximation of the original at its rank). With `factorize_convs`, every
/// `torch::nn::Conv2d` with min(in_channels, out_channels) >= `min_channels` for which factorizing with
/// `latent_channels` could save multiply-adds (`modules::factorizing_could_speedup`; never grouped convolutions)
/// becomes a `modules::FactorizedConv2d`; with `factorize_linears`, every `torch::nn::Linear` with
/// min(in_features, out_features) >= `min_features` likewise becomes a `modules::FactorizedLinear` with
/// `latent_features`. A latent size below 1 is a fraction of min(in, out) (truncated, at least 1), otherwise a
/// count. The optimizers' groups trade the replaced layers' parameters for the new ones. Returns what was
/// replaced (convolutions first). Every replaced layer's parent must hold it in a `surgery::SurgicalModule` slot.
/// Composer counterpart: `composer.functional.apply_factorization(model, factorize_convs=True,
/// factorize_linears=True, min_channels=512, latent_channels=0.25, min_features=512, latent_features=0.25,
/// optimizers=None)` (whose factors start from a random initialisation).
/// \throws std::invalid_argument for a latent size <= 0, not finite, or >= 1 and not whole, or for a layer not
///         in a slot (the model is then unchanged).
inline surgery::SurgeryReport apply_factorization(
    torch::nn::Module& model, bool factorize_convs = true, bool factorize_linears = true,
    std::int64_t min_channels = 512, double latent_channels = 0.25, std::int64_t min_features = 512,
    double latent_features = 0.25, const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  modules::check_latent_size(latent_channels, "latent_channels");
  modules::check_latent_size(latent_features, "latent_features");
  surgery::SurgeryReport report;
  if (factorize_convs) {
    report += surgery::replace_module_classes<torch::nn::Conv2dImpl>(
        model,
        [&](torch::nn::Conv2dImpl& conv, std::int64_t) {
          const bool wide_enough = std::min(conv.options.in_channels(), conv.options.out_channels()) >= min_channels;
          if (!wide_enough || !modules::factorizing_could_speedup(conv, latent_channels)) return torch::nn::AnyModule();
          return torch::nn::AnyModule(
              modules::FactorizedConv2d(modules::FactorizedConv2dImpl::from_conv2d(conv, latent_channels)));
        },
        optimizers);
  }
  if (factorize_linears) {
    report += surgery::replace_module_classes<torch::nn::LinearImpl>(
        model,
        [&](torch::nn::LinearImpl& linear, std::int64_t) {
          const bool wide_enough =
              std::min(linear.options.in_features(), linear.options.out_features()) >= min_features;
          if (!wide_enough || !modules::factorizing_could_speedup(linear, latent_features))
            return torch::nn::AnyModule();
          return torch::nn::AnyModule(
              modules::FactorizedLinear(modules::FactorizedLinearImpl::from_linear(linear, latent_features)));
        },
        optimizers);
  }
  return report;
}

/// `apply_factorization` with the optimizers first: `apply_factorization(*model, {sgd}, true, true, 256)`.
inline surgery::SurgeryReport apply_factorization(
    torch::nn::Module& model, const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers,
    bool factorize_convs = true, bool factorize_linears = true, std::int64_t min_channels = 512,
    double latent_channels = 0.25, std::int64_t min_features = 512, double latent_features = 0.25) {
  return apply_factorization(model, factorize_convs, factorize_linears, min_channels, latent_channels, min_features,
                             latent_features, optimizers);
}

}  // namespace composer::functional
