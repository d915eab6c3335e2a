#pragma once
/// \file
/// composer::algorithms::SqueezeExcite — Squeeze-and-Excitation gates after a model's convolutions (Hu et al.
/// 2018, "Squeeze-and-Excitation Networks", arXiv:1709.01507).

#include <cmath>
#include <cstdint>
#include <string>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/squeeze_excite.hpp>
#include <composer/modules/squeeze_excite.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `SqueezeExcite`, with Composer's defaults.
struct SqueezeExciteOptions {
  /// Hidden units of each gate's MLP; below 1, a fraction of the convolution's output channels.
  double latent_channels = 64;
  /// A gate is added after a convolution only if min(in_channels, out_channels) ≥ min_channels.
  std::int64_t min_channels = 128;
};

/// SqueezeExcite: at `INIT`, applies `functional::apply_squeeze_excite` to the model with the state's optimizers
/// (the gates' parameters join the optimizer's group), then logs the model's count of `SqueezeExciteConv2d` as
/// hyperparameter `squeeze_excite/num_squeeze_excite_layers`. Keeps no checkpoint state: the Trainer runs `INIT`
/// before loading. Composer counterpart: `composer.algorithms.SqueezeExcite(latent_channels=64,
/// min_channels=128)`.
class SqueezeExcite {
 public:
  /// Surgery once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "SqueezeExcite";

  /// SqueezeExcite with Composer's defaults.
  SqueezeExcite() : SqueezeExcite(SqueezeExciteOptions{}) {}
  /// SqueezeExcite with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit SqueezeExcite(double latent_channels, std::int64_t min_channels = 128)
      : SqueezeExcite(SqueezeExciteOptions{.latent_channels = latent_channels, .min_channels = min_channels}) {}
  /// SqueezeExcite with the given options: `SqueezeExcite({.latent_channels = 0.25, .min_channels = 32})`.
  /// \throws std::invalid_argument when latent_channels is not a positive finite number.
  explicit SqueezeExcite(const SqueezeExciteOptions& options) : options_(options) {
    if (!(options_.latent_channels > 0.0) || !std::isfinite(options_.latent_channels))
      checks::fail("SqueezeExcite latent_channels must be a positive number (a fraction of the "
                   "channels when below 1), got " + checks::num(options_.latent_channels));
  }

  /// The settings.
  const SqueezeExciteOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Adds the gates and logs their count.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::INIT);
    report_ = functional::apply_squeeze_excite(state.model.module(), options_.latent_channels, options_.min_channels,
                                               state.optimizers);
    const auto layers = surgery::count_module_instances<modules::SqueezeExciteConv2dImpl>(state.model.module());
    logger.log_hyperparameters({{"squeeze_excite/num_squeeze_excite_layers", std::to_string(layers)}});
  }

 private:
  SqueezeExciteOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
