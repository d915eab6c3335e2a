#pragma once
/// \file
/// composer::algorithms::WeightStandardization — convolution kernels standardised per output filter (Qiao et al.
/// 2019, arXiv:1903.10520).

#include <cstdint>
#include <string>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/weight_standardization.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `WeightStandardization`, with Composer's defaults.
struct WeightStandardizationOptions {
  /// Convolutions at the end of the model (in registration order) left unstandardised.
  std::int64_t n_last_layers_ignore = 0;
};

/// WeightStandardization: at `INIT`, applies `functional::apply_weight_standardization` to the model (every
/// convolution but the last `n_last_layers_ignore` then convolves with its kernel standardised per output
/// filter, (w − mean) / √(var + 1e-10)), and logs the number of standardised layers as hyperparameter
/// `WeightStandardization/num_weights_standardized`. The weights stay the same tensors, so the optimizers need no
/// change. Keeps no checkpoint state. Composer counterpart:
/// `composer.algorithms.WeightStandardization(n_last_layers_ignore=0)`.
class WeightStandardization {
 public:
  /// Surgery once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "WeightStandardization";

  /// WeightStandardization with Composer's defaults.
  WeightStandardization() : WeightStandardization(WeightStandardizationOptions{}) {}
  /// WeightStandardization with Composer's argument.
  /// \throws std::invalid_argument for n_last_layers_ignore < 0.
  explicit WeightStandardization(std::int64_t n_last_layers_ignore)
      : WeightStandardization(WeightStandardizationOptions{.n_last_layers_ignore = n_last_layers_ignore}) {}
  /// WeightStandardization with the given options: `WeightStandardization({.n_last_layers_ignore = 1})`.
  /// \throws std::invalid_argument for n_last_layers_ignore < 0.
  explicit WeightStandardization(const WeightStandardizationOptions& options) : options_(options) {
    if (options_.n_last_layers_ignore < 0)
      checks::fail("WeightStandardization n_last_layers_ignore must be >= 0, got " +
                   std::to_string(options_.n_last_layers_ignore));
  }

  /// The settings.
  const WeightStandardizationOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Standardises the convolutions and logs the count.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::INIT);
    report_ = functional::apply_weight_standardization(state.model.module(), options_.n_last_layers_ignore,
                                                       state.optimizers);
    logger.log_hyperparameters(
        {{"WeightStandardization/num_weights_standardized", std::to_string(report_.count())}});
  }

 private:
  WeightStandardizationOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
