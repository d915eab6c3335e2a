#pragma once
/// \file
/// composer::algorithms::BlurPool — anti-aliasing filters on a model's downsampling layers (Zhang 2019, "Making
/// Convolutional Networks Shift-Invariant Again", http://proceedings.mlr.press/v97/zhang19a.html).

#include <cstdint>
#include <string>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/blurpool.hpp>
#include <composer/modules/blurpool.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `BlurPool`, with Composer's defaults.
struct BlurPoolOptions {
  /// Replace strided convolutions by `modules::BlurConv2d`.
  bool replace_convs = true;
  /// Replace max pooling layers by `modules::BlurMaxPool2d`.
  bool replace_maxpools = true;
  /// Blur before the (strided) convolution; false convolves at stride 1 and blurs with the stride (costlier).
  bool blur_first = true;
  /// Convolutions with fewer input channels are left alone (keeps the stem unblurred).
  std::int64_t min_channels = 16;
};

/// BlurPool: at `INIT`, applies `functional::apply_blurpool` to the model with the state's optimizers, then logs
/// the model's counts as hyperparameters `blurpool/num_blurpool_layers` (BlurMaxPool2d) and
/// `blurpool/num_blurconv_layers` (BlurConv2d). Keeps no checkpoint state: the Trainer runs `INIT` before loading,
/// so a resumed run has the same layers. Composer counterpart: `composer.algorithms.BlurPool(replace_convs=True,
/// replace_maxpools=True, blur_first=True, min_channels=16)`.
class BlurPool {
 public:
  /// Surgery once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "BlurPool";

  /// BlurPool with Composer's defaults.
  BlurPool() : BlurPool(BlurPoolOptions{}) {}
  /// BlurPool with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit BlurPool(bool replace_convs, bool replace_maxpools = true, bool blur_first = true,
                    std::int64_t min_channels = 16)
      : BlurPool(BlurPoolOptions{.replace_convs = replace_convs,
                                 .replace_maxpools = replace_maxpools,
                                 .blur_first = blur_first,
                                 .min_channels = min_channels}) {}
  /// BlurPool with the given options: `BlurPool({.min_channels = 8})`.
  /// \throws std::invalid_argument when both replace_convs and replace_maxpools are false.
  explicit BlurPool(const BlurPoolOptions& options) : options_(options) {
    if (!options_.replace_convs && !options_.replace_maxpools)
      checks::fail(
          "BlurPool replace_convs and replace_maxpools are both false, so it would not change the model");
  }

  /// The settings.
  const BlurPoolOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Replaces the layers and logs the counts.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::INIT);
    report_ = functional::apply_blurpool(state.model.module(), options_.replace_convs, options_.replace_maxpools,
                                         options_.blur_first, options_.min_channels, state.optimizers);
    const auto pools = surgery::count_module_instances<modules::BlurMaxPool2dImpl>(state.model.module());
    const auto convs = surgery::count_module_instances<modules::BlurConv2dImpl>(state.model.module());
    logger.log_hyperparameters(
        {{"blurpool/num_blurpool_layers", std::to_string(pools)}, {"blurpool/num_blurconv_layers", std::to_string(convs)}});
  }

 private:
  BlurPoolOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
