#pragma once
/// \file
/// composer::algorithms::ColOut — drops a random fraction of the rows and columns of every image, which shrinks
/// the images and varies them without changing their content much.

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/algorithms/option_checks.hpp>
#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/colout.hpp>

namespace composer::algorithms {

/// Settings of `ColOut`, with Composer's defaults.
struct ColOutOptions {
  /// Fraction of the rows (dim −2) dropped, in [0, 1].
  double p_row = 0.15;
  /// Fraction of the columns (dim −1) dropped, in [0, 1].
  double p_col = 0.15;
  /// Drop the same rows and columns from the whole batch (true), or draw them for each sample (false).
  bool batch = true;
  /// Drop the same rows and columns from the target: `true`, `false`, or `"auto"` — only when the target has more
  /// than 2 dimensions and the input's H×W (a segmentation mask). Must not be `true` with `batch = false`.
  functional::ResizeTarget resize_target = "auto";
};

/// ColOut: at `AFTER_DATALOADER` keeps int((1 − p_row)·H) of the rows and int((1 − p_col)·W) of the columns, chosen
/// at random and kept in their order. With `batch`, one draw serves the whole batch and, per `resize_target`, the
/// target; without it every sample gets its own rows and columns and the target is left alone (the output shape
/// is the same either way).
/// Composer counterpart: `composer.algorithms.ColOut(p_row=0.15, p_col=0.15, batch=True, resize_target='auto')`;
/// Composer's `batch=False` adds a per-sample transform to the dataset at `FIT_START` instead.
class ColOut {
 public:
  /// ColOut acts on the whole (host) batch.
  static constexpr EventSet events{Event::AFTER_DATALOADER};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "ColOut";

  /// ColOut with Composer's defaults (15% of the rows and columns, one draw per batch, masks resized).
  ColOut() : ColOut(ColOutOptions{}) {}

  /// ColOut with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument for p_row or p_col outside [0, 1], a resize_target string other than "auto",
  ///         or resize_target = true with batch = false.
  explicit ColOut(double p_row, double p_col = 0.15, bool batch = true, functional::ResizeTarget resize_target = "auto")
      : ColOut(ColOutOptions{.p_row = p_row, .p_col = p_col, .batch = batch, .resize_target = resize_target}) {}

  /// ColOut with the given options: `ColOut({.p_row = 0.25, .p_col = 0.25})`.
  /// \throws std::invalid_argument as the positional constructor.
  explicit ColOut(const ColOutOptions& options) : options_(options) {
    check_unit_interval(options_.p_row, "ColOut", "p_row");
    check_unit_interval(options_.p_col, "ColOut", "p_col");
    if (!options_.batch && options_.resize_target.mode() == functional::ResizeTarget::Mode::yes)
      checks::fail("ColOut resize_target=true needs batch=true (per-sample ColOut leaves targets alone)");
  }

  /// The settings.
  const ColOutOptions& options() const noexcept { return options_; }
  /// The rows and columns kept in the last batch (with `batch = false`: those of its last sample).
  const functional::ColOutIndices& kept() const noexcept { return kept_; }

  /// Drops rows and columns of `state.batch.inputs` ((N, C, H, W), or (C, H, W) with `batch`), and of the target
  /// when `resize_target` says so.
  /// \throws std::invalid_argument for an input that is not an image or image batch.
  void apply(EventTag<Event::AFTER_DATALOADER>, State& state) {
    const at::Tensor& input = state.batch.inputs;
    if (options_.batch) {
      checks::check_image_or_batch(input, "ColOut");
      kept_ = functional::sample_colout_indices(input.size(-2), input.size(-1), options_.p_row, options_.p_col);
      auto result = functional::colout_batch(input, state.batch.targets, kept_, options_.resize_target);
      state.batch.inputs = std::move(result.input);
      state.batch.targets = std::move(result.target);
      return;
    }
    checks::check_image_batch(input, "ColOut");
    std::vector<at::Tensor> samples;
    samples.reserve(static_cast<std::size_t>(input.size(0)));
    for (std::int64_t i = 0; i < input.size(0); ++i) {
      kept_ = functional::sample_colout_indices(input.size(-2), input.size(-1), options_.p_row, options_.p_col);
      samples.push_back(functional::colout_batch(input[i], kept_));
    }
    if (!samples.empty()) state.batch.inputs = at::stack(samples);
  }

 private:
  ColOutOptions options_;
  functional::ColOutIndices kept_;
};

}  // namespace composer::algorithms
