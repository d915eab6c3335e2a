#pragma once
/// \file
/// composer::algorithms::ProgressiveResizing — trains on downscaled images early and grows them to full size
/// (after the FixRes observation of Touvron et al., arXiv:1906.06423, that a low-resolution phase followed by
/// full-resolution training works).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/resize.hpp>

namespace composer::algorithms {

/// Settings of `ProgressiveResizing`, with Composer's defaults.
struct ProgressiveResizingOptions {
  /// `"resize"` (nearest-neighbour downscale) or `"crop"` (one random crop window for the batch).
  std::string mode = "resize";
  /// Scale of the images until `delay_fraction` of training, in [0, 1].
  double initial_scale = 0.5;
  /// Final fraction of training at full size, in [0, 1].
  double finetune_fraction = 0.2;
  /// Fraction of training at `initial_scale` before the scale starts to grow, in [0, 1], with
  /// delay_fraction + finetune_fraction ≤ 1.
  double delay_fraction = 0.5;
  /// The scaled width is rounded to a multiple of this many pixels, > 0.
  std::int64_t size_increment = 4;
  /// Resize the targets too (segmentation masks (N, H, W) or dense maps (N, C, H, W)).
  bool resize_targets = false;
};

/// ProgressiveResizing: at `AFTER_DATALOADER`, with d the elapsed fraction of training, scales the batch by
/// s = s₀ + (1 − s₀)·f, where f = 0 before `delay_fraction` and min((d − delay)/(1 − finetune − delay), 1) after,
/// with the scaled width rounded (half to even) to a multiple of `size_increment`: the factor applied to both
/// H and W is round(W·s/inc)·inc / W, and a factor ≥ 1 leaves the batch alone. Logs
/// `progressive_resizing/height`, `/width` and `/scale_factor` (s, before rounding).
/// Composer counterpart: `composer.algorithms.ProgressiveResizing(mode='resize', initial_scale=0.5,
/// finetune_fraction=0.2, delay_fraction=0.5, size_increment=4, resize_targets=False)`.
class ProgressiveResizing {
 public:
  /// ProgressiveResizing acts on the whole (host) batch.
  static constexpr EventSet events{Event::AFTER_DATALOADER};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "ProgressiveResizing";

  /// ProgressiveResizing with Composer's defaults.
  ProgressiveResizing() : ProgressiveResizing(ProgressiveResizingOptions{}) {}

  /// ProgressiveResizing with Composer's arguments, in Composer's order; `mode` is any string type.
  /// \throws std::invalid_argument as the options constructor.
  template <class Mode>
    requires std::convertible_to<const Mode&, std::string_view>
  explicit ProgressiveResizing(const Mode& mode, double initial_scale = 0.5, double finetune_fraction = 0.2,
                               double delay_fraction = 0.5, std::int64_t size_increment = 4,
                               bool resize_targets = false)
      : ProgressiveResizing(ProgressiveResizingOptions{.mode = std::string(std::string_view(mode)),
                                                       .initial_scale = initial_scale,
                                                       .finetune_fraction = finetune_fraction,
                                                       .delay_fraction = delay_fraction,
                                                       .size_increment = size_increment,
                                                       .resize_targets = resize_targets}) {}

  /// ProgressiveResizing with the given options: `ProgressiveResizing({.mode = "crop", .initial_scale = 0.25})`.
  /// \throws std::invalid_argument for a mode other than "resize" or "crop", initial_scale, finetune_fraction or
  ///         delay_fraction outside [0, 1], delay_fraction + finetune_fraction > 1, or size_increment ≤ 0.
  explicit ProgressiveResizing(ProgressiveResizingOptions options) : options_(std::move(options)) {
    using checks::fail;
    using checks::num;
    if (options_.mode != "resize" && options_.mode != "crop")
      fail("ProgressiveResizing mode must be 'resize' or 'crop', got '" + options_.mode + "'");
    if (!(options_.initial_scale >= 0.0 && options_.initial_scale <= 1.0))
      fail("ProgressiveResizing initial_scale must be in [0, 1], got " + num(options_.initial_scale));
    if (!(options_.finetune_fraction >= 0.0 && options_.finetune_fraction <= 1.0))
      fail("ProgressiveResizing finetune_fraction must be in [0, 1], got " + num(options_.finetune_fraction));
    if (!(options_.delay_fraction >= 0.0 && options_.delay_fraction <= 1.0))
      fail("ProgressiveResizing delay_fraction must be in [0, 1], got " + num(options_.delay_fraction));
    if (!(options_.delay_fraction + options_.finetune_fraction <= 1.0))
      fail("ProgressiveResizing delay_fraction + finetune_fraction must be <= 1, got " +
           num(options_.delay_fraction + options_.finetune_fraction));
    if (options_.size_increment <= 0)
      fail("ProgressiveResizing size_increment must be > 0, got " + std::to_string(options_.size_increment));
  }

  /// The settings.
  const ProgressiveResizingOptions& options() const noexcept { return options_; }

  /// s at elapsed fraction `elapsed`, before rounding to `size_increment`. When delay + finetune = 1 the
  /// growth phase is empty and s jumps to 1 at `delay_fraction`.
  double scale_factor(double elapsed) const noexcept {
    double grown = 0.0;
    if (elapsed >= options_.delay_fraction) {
      const double span = 1.0 - options_.finetune_fraction - options_.delay_fraction;
      grown = span > 0.0 ? std::min((elapsed - options_.delay_fraction) / span, 1.0) : 1.0;
    }
    return options_.initial_scale + (1.0 - options_.initial_scale) * grown;
  }

  /// The factor applied to images `width` pixels wide at elapsed fraction `elapsed`:
  /// round(width·s / size_increment)·size_increment / width, rounding half to even.
  double pinned_scale_factor(double elapsed, std::int64_t width) const noexcept {
    const double increment = static_cast<double>(options_.size_increment);
    const double pinned_width = std::nearbyint(static_cast<double>(width) * scale_factor(elapsed) / increment) * increment;
    return pinned_width / static_cast<double>(width);
  }

  /// Resizes `state.batch` for the current elapsed duration.
  /// \throws std::logic_error without a max_duration; std::invalid_argument for an input that is not an image batch
  ///         (N, C, H, W), or a factor that shrinks the images to nothing.
  void apply(EventTag<Event::AFTER_DATALOADER>, State& state, const Logger& logger) {
    const auto elapsed = state.get_elapsed_duration();
    if (!elapsed) throw std::logic_error("composer: ProgressiveResizing needs the state's max_duration");
    const at::Tensor& input = state.batch.inputs;
    checks::check_image_batch(input, "ProgressiveResizing");
    const double scale = scale_factor(elapsed->value());
    const double factor = pinned_scale_factor(elapsed->value(), input.size(3));
    auto [new_input, new_target] =
        functional::resize_batch(input, state.batch.targets, factor, options_.mode, options_.resize_targets);
    state.batch.inputs = std::move(new_input);
    state.batch.targets = std::move(new_target);
    if (logger.has_metrics_destination())
      logger.log_metrics({{"progressive_resizing/height", static_cast<double>(state.batch.inputs.size(2))},
                          {"progressive_resizing/width", static_cast<double>(state.batch.inputs.size(3))},
                          {"progressive_resizing/scale_factor", scale}});
  }

 private:
  ProgressiveResizingOptions options_;
};

}  // namespace composer::algorithms
