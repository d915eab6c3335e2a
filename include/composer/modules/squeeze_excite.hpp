#pragma once
/// \file
/// Squeeze-and-Excitation layers (Hu et al. 2018, arXiv:1709.01507): `SqueezeExcite2d`, a channel gate computed
/// from globally pooled features, and `SqueezeExciteConv2d`, a convolution followed by such a gate.
/// Composer counterpart: `composer.algorithms.squeeze_excite` (`SqueezeExcite2d`, `SqueezeExciteConv2d`).

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <composer/surgery/surgical_module.hpp>

namespace composer::modules {

/// The hidden width of a squeeze-excite gate over `num_features` channels: `latent_channels` itself when it is
/// at least 1, else that fraction of `num_features`, truncated. Composer counterpart: the computation of
/// `SqueezeExcite2d.latent_channels`.
/// \throws std::invalid_argument when latent_channels is not positive and finite, or the width comes out as 0.
[[nodiscard]] inline std::int64_t squeeze_excite_latent_channels(std::int64_t num_features, double latent_channels) {
  if (!(latent_channels > 0.0) || !std::isfinite(latent_channels))
    throw std::invalid_argument("composer: latent_channels must be a positive number (a count, or a fraction "
                                "of the channels when below 1), got " + std::to_string(latent_channels));
  const auto width = static_cast<std::int64_t>(latent_channels >= 1.0 ? latent_channels
                                                                      : latent_channels * static_cast<double>(num_features));
  if (width < 1)
    throw std::invalid_argument("composer: latent_channels " + std::to_string(latent_channels) + " of " +
                                std::to_string(num_features) + " channels leaves no hidden unit");
  return width;
}

/// A Squeeze-and-Excitation block: global average pooling, Linear(C → latent, no bias), ReLU,
/// Linear(latent → C, no bias), sigmoid, and the input scaled channel by channel by those gates. The layers are
/// child `pool_and_mlp` (a Sequential, as in Composer, so parameters are `pool_and_mlp.2.weight` and
/// `pool_and_mlp.4.weight`). Composer counterpart: `composer.algorithms.squeeze_excite.SqueezeExcite2d(
/// num_features, latent_channels=0.125)`.
class SqueezeExcite2dImpl : public torch::nn::Module {
 public:
  /// A gate over `num_features` channels with a hidden layer of `latent_channels` units (a fraction of
  /// `num_features` when below 1). \throws std::invalid_argument for num_features < 1 or a bad latent_channels.
  explicit SqueezeExcite2dImpl(std::int64_t num_features, double latent_channels = 0.125)
      : num_features_(num_features) {
    if (num_features < 1)
      throw std::invalid_argument("composer: SqueezeExcite2d num_features must be positive, got " +
                                  std::to_string(num_features));
    latent_channels_ = squeeze_excite_latent_channels(num_features, latent_channels);
    using namespace torch::nn;
    pool_and_mlp_ = register_module(
        "pool_and_mlp",
        Sequential(AdaptiveAvgPool2d(AdaptiveAvgPool2dOptions(1)), Flatten(),
                   Linear(LinearOptions(num_features, latent_channels_).bias(false)), ReLU(),
                   Linear(LinearOptions(latent_channels_, num_features).bias(false)), Sigmoid()));
  }

  /// The per-channel gates, [N, C] in (0, 1).
  at::Tensor gates(const at::Tensor& input) { return pool_and_mlp_->forward(input); }
  /// input · gates(input), broadcast over height and width.
  at::Tensor forward(const at::Tensor& input) {
    if (input.dim() != 4 || input.size(1) != num_features_)
      throw std::invalid_argument("composer: SqueezeExcite2d over " + std::to_string(num_features_) +
                                  " channels needs an input of shape (N, " + std::to_string(num_features_) +
                                  ", H, W)");
    return input * gates(input).reshape({input.size(0), input.size(1), 1, 1});
  }

  /// Channels gated.
  [[nodiscard]] std::int64_t num_features() const noexcept { return num_features_; }
  /// Hidden units of the gate's MLP.
  [[nodiscard]] std::int64_t latent_channels() const noexcept { return latent_channels_; }

 private:
  std::int64_t num_features_;
  std::int64_t latent_channels_ = 0;
  torch::nn::Sequential pool_and_mlp_{nullptr};
};
/// Module holder of `SqueezeExcite2dImpl`.
TORCH_MODULE(SqueezeExcite2d);

/// A convolution followed by a squeeze-excite gate over its output channels: se(conv(x)). The convolution (slot
/// `conv`) is the module it was built around, kept with its parameters; the gate is slot `se`. Composer
/// counterpart: `composer.algorithms.squeeze_excite.SqueezeExciteConv2d`.
class SqueezeExciteConv2dImpl : public surgery::SurgicalModule {
 public:
  /// Wraps `conv` (kept as it is, same parameters) and adds a gate of `latent_channels` hidden units (a fraction
  /// of the convolution's output channels when below 1). Composer counterpart: `SqueezeExciteConv2d.from_conv2d`.
  explicit SqueezeExciteConv2dImpl(torch::nn::Conv2d conv, double latent_channels = 0.125) {
    if (!conv) throw std::invalid_argument("composer: SqueezeExciteConv2d needs a convolution");
    const std::int64_t out_channels = conv->options.out_channels();
    conv_ = register_slot("conv", conv);
    se_ = register_slot("se", SqueezeExcite2d(out_channels, latent_channels));
  }
  /// A fresh convolution built from `options`, then the gate.
  explicit SqueezeExciteConv2dImpl(const torch::nn::Conv2dOptions& options, double latent_channels = 0.125)
      : SqueezeExciteConv2dImpl(torch::nn::Conv2d(options), latent_channels) {}

  /// se(conv(x)).
  at::Tensor forward(const at::Tensor& input) { return call(se_, call(conv_, input)); }

  /// The convolution in slot `conv` (null if surgery replaced it with another module type).
  [[nodiscard]] std::shared_ptr<torch::nn::Conv2dImpl> conv() const { return slot_as<torch::nn::Conv2dImpl>(conv_); }
  /// The gate in slot `se` (null if surgery replaced it).
  [[nodiscard]] std::shared_ptr<SqueezeExcite2dImpl> se() const { return slot_as<SqueezeExcite2dImpl>(se_); }

 private:
  Slot conv_, se_;
};
/// Module holder of `SqueezeExciteConv2dImpl`.
TORCH_MODULE(SqueezeExciteConv2d);

}  // namespace composer::modules
