#pragma once
/// \file
/// composer::algorithms::Factorize — convolution and linear layers split into pairs of low-rank layers.

#include <cstdint>
#include <string>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/factorize.hpp>
#include <composer/modules/factorize.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `Factorize`, with Composer's defaults (those of the algorithm, which differ from the functional
/// form's: min_channels and min_features 256 instead of 512, latent_features 128 instead of 0.25).
struct FactorizeOptions {
  /// Try to factorize `torch::nn::Conv2d` layers.
  bool factorize_convs = true;
  /// Try to factorize `torch::nn::Linear` layers.
  bool factorize_linears = true;
  /// Convolutions with fewer input or output channels are left alone.
  std::int64_t min_channels = 256;
  /// Latent channels: a fraction (< 1) of min(in, out) channels, or a count.
  double latent_channels = 0.25;
  /// Linear layers with fewer input or output features are left alone.
  std::int64_t min_features = 256;
  /// Latent features: a fraction (< 1) of min(in, out) features, or a count.
  double latent_features = 128;
};

/// Factorize: at `INIT`, applies `functional::apply_factorization` to the model with the state's optimizers
/// (each layer that is wide enough and whose factorization saves multiply-adds becomes a pair initialised from
/// its truncated SVD), then logs the model's counts as hyperparameters `factorize/num_conv2d_replacements`
/// (FactorizedConv2d, when factorize_convs) and `factorize/num_linear_replacements` (FactorizedLinear, when
/// factorize_linears). Keeps no checkpoint state: the Trainer runs `INIT` before loading, so a resumed run has
/// the same layers. Composer counterpart: `composer.algorithms.Factorize(factorize_convs=True,
/// factorize_linears=True, min_channels=256, latent_channels=0.25, min_features=256, latent_features=128)`.
class Factorize {
 public:
  /// Surgery once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "Factorize";

  /// Factorize with Composer's defaults.
  Factorize() : Factorize(FactorizeOptions{}) {}
  /// Factorize with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit Factorize(bool factorize_convs, bool factorize_linears = true, std::int64_t min_channels = 256,
                     double latent_channels = 0.25, std::int64_t min_features = 256, double latent_features = 128)
      : Factorize(FactorizeOptions{.factorize_convs = factorize_convs,
                                   .factorize_linears = factorize_linears,
                                   .min_channels = min_channels,
                                   .latent_channels = latent_channels,
                                   .min_features = min_features,
                                   .latent_features = latent_features}) {}
  /// Factorize with the given options: `Factorize({.min_channels = 64})`.
  /// \throws std::invalid_argument for a latent size <= 0, not finite, or >= 1 and not whole.
  explicit Factorize(const FactorizeOptions& options) : options_(options) {
    modules::check_latent_size(options_.latent_channels, "latent_channels");
    modules::check_latent_size(options_.latent_features, "latent_features");
  }

  /// The settings.
  const FactorizeOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Factorizes the layers and logs the counts.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::INIT);
    auto& model = state.model.module();
    report_ = functional::apply_factorization(model, options_.factorize_convs, options_.factorize_linears,
                                              options_.min_channels, options_.latent_channels, options_.min_features,
                                              options_.latent_features, state.optimizers);
    if (options_.factorize_convs)
      logger.log_hyperparameters(
          {{"factorize/num_conv2d_replacements",
            std::to_string(surgery::count_module_instances<modules::FactorizedConv2dImpl>(model))}});
    if (options_.factorize_linears)
      logger.log_hyperparameters(
          {{"factorize/num_linear_replacements",
            std::to_string(surgery::count_module_instances<modules::FactorizedLinearImpl>(model))}});
  }

 private:
  FactorizeOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
