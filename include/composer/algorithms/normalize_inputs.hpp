#pragma once
/// \file
/// composer::algorithms::NormalizeInputs — converts an image batch to floating point and normalises each channel
/// on the training device, as the first step after the data loader.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/kernels/apply_stage.hpp>
#include <composer/kernels/batch_stages.hpp>

namespace composer::algorithms {

/// Settings of `NormalizeInputs`.
struct NormalizeInputsOptions {
  /// Per-channel means, on the [0, 1] scale of the converted pixels (uint8 batches are divided by 255 first).
  std::vector<double> mean;
  /// Per-channel standard deviations, same scale, finite and non-zero.
  std::vector<double> std;
  /// The dtype of the normalised batch: float32, bfloat16 or float16.
  at::ScalarType dtype = at::kFloat;
};

/// NormalizeInputs: at `AFTER_DATALOADER` turns the batch [N, C, H, W] (uint8 or floating point, any layout)
/// into x = (s·x − mean[c]) / std[c] in `dtype`, with s = 1/255 for uint8 and 1 otherwise, keeping a channels-last
/// layout. Lets a loader hand over raw uint8 images (a quarter of the bytes of float32) and move the conversion
/// to the device and, inside a `Trainer`, into the fused batch transform.
/// Composer counterpart: `composer.datasets.utils.NormalizationFn` used as a `DataSpec` device transform (which
/// takes mean and std on the 0–255 scale; here they are on the 0–1 scale).
class NormalizeInputs {
 public:
  /// Acts on the whole batch as it arrives.
  static constexpr EventSet events{Event::AFTER_DATALOADER};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "NormalizeInputs";
  /// The per-element description of what NormalizeInputs does to the inputs (`kernels/batch_stages.hpp`).
  using stage_type = kernels::stage::Normalize;
  /// The event at which the stage acts on the inputs.
  static constexpr Event stage_event = Event::AFTER_DATALOADER;

  /// NormalizeInputs with the given options: `NormalizeInputs({.mean = {0.2860}, .std = {0.3530}})`.
  /// \throws std::invalid_argument for empty or mismatched mean/std, a non-finite mean, a zero or non-finite std,
  ///         or a dtype that is not float32, bfloat16 or float16.
  explicit NormalizeInputs(NormalizeInputsOptions options) : options_(std::move(options)) {
    if (options_.mean.empty() || options_.mean.size() != options_.std.size())
      checks::fail("NormalizeInputs needs one mean and one std per channel, got " +
                   std::to_string(options_.mean.size()) + " mean(s) and " +
                   std::to_string(options_.std.size()) + " std(s)");
    for (std::size_t c = 0; c < options_.mean.size(); ++c) {
      if (!std::isfinite(options_.mean[c]))
        checks::fail("NormalizeInputs mean[" + std::to_string(c) + "] must be finite, got " +
                     checks::num(options_.mean[c]));
      if (!std::isfinite(options_.std[c]) || options_.std[c] == 0.0)
        checks::fail("NormalizeInputs std[" + std::to_string(c) + "] must be finite and non-zero, got " +
                     checks::num(options_.std[c]));
    }
    if (options_.dtype != at::kFloat && options_.dtype != at::kBFloat16 && options_.dtype != at::kHalf)
      checks::fail(std::string("NormalizeInputs dtype must be float32, bfloat16 or float16, got ") +
                   c10::toString(options_.dtype));
  }

  /// The settings.
  const NormalizeInputsOptions& options() const noexcept { return options_; }
  /// The dtype of the normalised batch.
  at::ScalarType dtype() const noexcept { return options_.dtype; }

  /// Checks the batch and returns the stage (means, standard deviations, output dtype; nothing random), which the
  /// eager `AFTER_DATALOADER` applies and a fused pass takes instead.
  /// \throws std::invalid_argument for an input that is not [N, C, H, W] uint8 or floating point with C = the
  ///         number of means.
  stage_type draw(const State& state) const {
    check_input(state.batch.inputs);
    return stage_type{options_.mean, options_.std, options_.dtype};
  }

  /// Converts and normalises `state.batch.inputs` (the stage of `draw` applied).
  /// \throws std::invalid_argument as `draw`.
  void apply(EventTag<Event::AFTER_DATALOADER>, State& state) const {
    state.batch.inputs = kernels::apply_stage(draw(state), state.batch.inputs);
  }

 private:
  void check_input(const at::Tensor& input) const {
    checks::check_image_batch(input, "NormalizeInputs");
    if (input.size(1) != static_cast<int64_t>(options_.mean.size()))
      checks::fail("NormalizeInputs has " + std::to_string(options_.mean.size()) +
                   " channel mean(s) but the batch has " + std::to_string(input.size(1)) +
                   " channels (shape " + checks::shape_of(input) + ")");
    if (input.scalar_type() != at::kByte && !at::isFloatingType(input.scalar_type()))
      checks::fail(std::string("NormalizeInputs needs a uint8 or floating-point batch, got ") +
                   c10::toString(input.scalar_type()));
  }

  NormalizeInputsOptions options_;
};

}  // namespace composer::algorithms
