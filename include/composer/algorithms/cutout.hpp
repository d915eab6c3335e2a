#pragma once
/// \file
/// composer::algorithms::CutOut — zeroes square holes in every image of the batch (DeVries & Taylor, "Improved
/// Regularization of Convolutional Neural Networks with Cutout", arXiv:1708.04552).

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/kernels/apply_stage.hpp>
#include <composer/kernels/batch_stages.hpp>

namespace composer::algorithms {

/// Settings of `CutOut`, with Composer's defaults.
struct CutOutOptions {
  /// Number of holes, ≥ 0.
  std::int64_t num_holes = 1;
  /// Side of each square hole as a fraction of min(H, W), in (0, 1].
  double length = 0.5;
  /// Draw hole centres so that every pixel is equally likely to be cut (otherwise: centre uniform over the image).
  bool uniform_sampling = false;
};

/// CutOut: at `AFTER_DATALOADER` cuts `num_holes` square holes of side int(min(H, W)·length) (clipped at the
/// borders) at random centres, the same holes in every image and channel of the batch, and sets them to zero.
/// Composer counterpart: `composer.algorithms.CutOut(num_holes=1, length=0.5, uniform_sampling=False)`.
class CutOut {
 public:
  /// CutOut acts on the whole (host) batch.
  static constexpr EventSet events{Event::AFTER_DATALOADER};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "CutOut";
  /// The per-element description of what CutOut does to the inputs (`kernels/batch_stages.hpp`).
  using stage_type = kernels::stage::CutOut;
  /// The event at which the stage acts on the inputs.
  static constexpr Event stage_event = Event::AFTER_DATALOADER;

  /// CutOut with Composer's defaults (one hole of half the image's side).
  CutOut() : CutOut(CutOutOptions{}) {}

  /// CutOut with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument for num_holes < 0 or length outside (0, 1].
  explicit CutOut(std::int64_t num_holes, double length = 0.5, bool uniform_sampling = false)
      : CutOut(CutOutOptions{.num_holes = num_holes, .length = length, .uniform_sampling = uniform_sampling}) {}

  /// CutOut with the given options: `CutOut({.num_holes = 2, .length = 0.25})`.
  /// \throws std::invalid_argument for num_holes < 0 or length outside (0, 1].
  explicit CutOut(const CutOutOptions& options) : options_(options) {
    if (options_.num_holes < 0)
      checks::fail("CutOut num_holes must be >= 0, got " + std::to_string(options_.num_holes));
    if (!(options_.length > 0.0 && options_.length <= 1.0))
      checks::fail("CutOut length must be in (0, 1], got " + checks::num(options_.length));
  }

  /// The settings.
  const CutOutOptions& options() const noexcept { return options_; }
  /// The holes cut in the last batch (rows [y1, y2), columns [x1, x2)).
  const std::vector<functional::CutoutHole>& holes() const noexcept { return holes_; }

  /// Draws this batch's holes for its image size ((N, C, H, W) or a single (C, H, W) image) and returns them as the
  /// stage, which the eager `AFTER_DATALOADER` applies and a fused pass takes instead.
  /// Composer counterpart: the draws of `composer.functional.cutout_batch`.
  /// \throws std::invalid_argument for an input that is not an image or image batch.
  stage_type draw(State& state) {
    const at::Tensor& input = state.batch.inputs;
    checks::check_image_or_batch(input, "CutOut");
    const std::int64_t height = input.size(-2);
    const std::int64_t width = input.size(-1);
    holes_.clear();
    if (options_.num_holes > 0 && height > 0 && width > 0) {
      const std::int64_t side = functional::cutout_length_pixels(height, width, options_.length);
      holes_ = functional::sample_cutout_holes(height, width, options_.num_holes, side, options_.uniform_sampling);
    }
    return stage_type{holes_};
  }

  /// Cuts the holes into `state.batch.inputs` (the stage of `draw` applied).
  /// \throws std::invalid_argument for an input that is not an image or image batch.
  void apply(EventTag<Event::AFTER_DATALOADER>, State& state) {
    state.batch.inputs = kernels::apply_stage(draw(state), state.batch.inputs);
  }

 private:
  CutOutOptions options_;
  std::vector<functional::CutoutHole> holes_;
};

}  // namespace composer::algorithms
