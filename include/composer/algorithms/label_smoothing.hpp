#pragma once
/// \file
/// composer::algorithms::LabelSmoothing — computes the loss against targets shrunk towards the uniform
/// distribution (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", arXiv:1512.00567).

#include <ATen/ATen.h>

#include <composer/algorithms/option_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/label_smoothing.hpp>

namespace composer::algorithms {

/// Settings of `LabelSmoothing`, with Composer's default.
struct LabelSmoothingOptions {
  /// s in [0, 1]: 0 leaves one-hot targets alone, 1 replaces them by the uniform distribution.
  double smoothing = 0.1;
};

/// LabelSmoothing: at `BEFORE_LOSS` replaces the microbatch's targets by (1 − s)·onehot(y) + s/C, with C the
/// outputs' size in dim 1 (dense targets are smoothed the same way), and at `AFTER_LOSS` puts the original
/// targets back. As `AFTER_LOSS` runs algorithms in reverse order, this nests with other algorithms that change
/// and restore the targets.
/// Composer counterpart: `composer.algorithms.LabelSmoothing(smoothing=0.1)`.
class LabelSmoothing {
 public:
  /// Smooth before the loss, restore after it.
  static constexpr EventSet events{Event::BEFORE_LOSS, Event::AFTER_LOSS};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "LabelSmoothing";

  /// LabelSmoothing with Composer's default s = 0.1.
  LabelSmoothing() : LabelSmoothing(LabelSmoothingOptions{}) {}

  /// LabelSmoothing with strength `smoothing`.
  /// \throws std::invalid_argument for smoothing outside [0, 1].
  explicit LabelSmoothing(double smoothing) : LabelSmoothing(LabelSmoothingOptions{.smoothing = smoothing}) {}

  /// LabelSmoothing with the given options: `LabelSmoothing({.smoothing = 0.2})`.
  /// \throws std::invalid_argument for smoothing outside [0, 1].
  explicit LabelSmoothing(const LabelSmoothingOptions& options) : options_(options) {
    check_unit_interval(options_.smoothing, "LabelSmoothing", "smoothing");
  }

  /// The settings.
  const LabelSmoothingOptions& options() const noexcept { return options_; }
  /// s.
  double smoothing() const noexcept { return options_.smoothing; }
  /// The targets saved at the last `BEFORE_LOSS`.
  const at::Tensor& original_labels() const noexcept { return original_labels_; }

  /// Smooths the targets (`BEFORE_LOSS`) or restores them (`AFTER_LOSS`).
  void apply(auto event, State& state) {
    if constexpr (event == Event::BEFORE_LOSS) {
      original_labels_ = state.batch.targets.clone();
      state.batch.targets = functional::smooth_labels(state.outputs, state.batch.targets, options_.smoothing);
    } else if constexpr (event == Event::AFTER_LOSS) {
      state.batch.targets = original_labels_;
    }
  }

 private:
  LabelSmoothingOptions options_;
  at::Tensor original_labels_;
};

}  // namespace composer::algorithms
