#pragma once
/// \file
/// composer::algorithms::GradientClipping — clips the model's gradients after every backward pass, before
/// the optimizer steps.

#include <optional>
#include <string>
#include <utility>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/gradient_clipping.hpp>

namespace composer::algorithms {

/// Settings of `GradientClipping`. Composer gives neither a default; here the type defaults to `"norm"` and
/// the threshold must be set.
struct GradientClippingOptions {
  /// `"norm"` (global L2 norm), `"value"` (element-wise clamp) or `"adaptive"` (AGC).
  std::string clipping_type = "norm";
  /// The largest norm (`norm`), absolute value (`value`) or gradient-to-weight norm ratio (`adaptive`); required.
  std::optional<double> clipping_threshold;
};

/// GradientClipping: at `AFTER_TRAIN_BATCH` (after the gradients of the whole batch are accumulated and, under
/// mixed precision, unscaled; before the optimizer step) clips the gradients of every model parameter with
/// `functional::apply_gradient_clipping`. With an optimizer that evaluates its closure more than once (SAM)
/// the clipping applies after each pass. Composer counterpart:
/// `composer.algorithms.GradientClipping(clipping_type, clipping_threshold)`.
class GradientClipping {
 public:
  /// Clipping runs once the batch's gradients are complete.
  static constexpr EventSet events{Event::AFTER_TRAIN_BATCH};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "GradientClipping";

  /// GradientClipping with Composer's arguments: `GradientClipping("adaptive", 0.01)`.
  /// \throws std::invalid_argument as the options constructor.
  GradientClipping(std::string clipping_type, double clipping_threshold)
      : GradientClipping(GradientClippingOptions{.clipping_type = std::move(clipping_type),
                                                 .clipping_threshold = clipping_threshold}) {}

  /// GradientClipping with the given options: `GradientClipping({.clipping_threshold = 1.0})`.
  /// \throws std::invalid_argument without a threshold, for a type other than norm, value or adaptive, or a
  ///         negative or NaN threshold.
  explicit GradientClipping(GradientClippingOptions options) : options_(std::move(options)) {
    if (!options_.clipping_threshold) checks::fail("GradientClipping needs a clipping_threshold");
    functional::check_clipping_arguments(options_.clipping_type, *options_.clipping_threshold);
  }

  /// The settings.
  const GradientClippingOptions& options() const noexcept { return options_; }

  /// Clips the gradients of `state.model`'s parameters.
  void apply(auto event, State& state) const {
    static_assert(decltype(event)::value == Event::AFTER_TRAIN_BATCH);
    functional::apply_gradient_clipping(state.model.module(), options_.clipping_type, *options_.clipping_threshold);
  }

 private:
  GradientClippingOptions options_;
};

}  // namespace composer::algorithms
