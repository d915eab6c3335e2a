#pragma once
/// \file
/// composer::algorithms::NormalizeInputs — converts an image batch to floating point and normalises each channel
/// on the training device, as the first step after the data loader.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/common.hpp>
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
  /// The fused-transform stage that does this policy's work on the batch (see `Trainer`).
  using fused_stage = kernels::stage::Normalize;
  /// The event whose input transform the fused stage replaces.
  static constexpr Event fused_event = Event::AFTER_DATALOADER;

  /// NormalizeInputs with the given options: `NormalizeInputs({.mean = {0.2860}, .std = {0.3530}})`.
  /// \throws std::invalid_argument for empty or mismatched mean/std, a non-finite mean, a zero or non-finite std,
  ///         or a dtype that is not float32, bfloat16 or float16.
  explicit NormalizeInputs(NormalizeInputsOptions options) : options_(std::move(options)) {
    if (options_.mean.empty() || options_.mean.size() != options_.std.size())
      functional::detail::fail("NormalizeInputs needs one mean and one std per channel, got " +
                               std::to_string(options_.mean.size()) + " mean(s) and " +
                               std::to_string(options_.std.size()) + " std(s)");
    for (std::size_t c = 0; c < options_.mean.size(); ++c) {
      if (!std::isfinite(options_.mean[c]))
        functional::detail::fail("NormalizeInputs mean[" + std::to_string(c) + "] must be finite, got " +
                                 functional::detail::num(options_.mean[c]));
      if (!std::isfinite(options_.std[c]) || options_.std[c] == 0.0)
        functional::detail::fail("NormalizeInputs std[" + std::to_string(c) + "] must be finite and non-zero, got " +
                                 functional::detail::num(options_.std[c]));
    }
    if (options_.dtype != at::kFloat && options_.dtype != at::kBFloat16 && options_.dtype != at::kHalf)
      functional::detail::fail(std::string("NormalizeInputs dtype must be float32, bfloat16 or float16, got ") +
                               c10::toString(options_.dtype));
  }

  /// The settings.
  const NormalizeInputsOptions& options() const noexcept { return options_; }
  /// The dtype of the normalised batch.
  at::ScalarType dtype() const noexcept { return options_.dtype; }

  /// Skips the eager transform for a batch the fused pass already normalised.
  bool match(Event, const State& state) const noexcept { return fused_batch_ != state.timestamp.batch().count(); }

  /// Converts and normalises `state.batch.inputs`.
  /// \throws std::invalid_argument for an input that is not [N, C, H, W] with C = the number of means.
  void apply(EventTag<Event::AFTER_DATALOADER>, State& state) const {
    const at::Tensor& input = state.batch.inputs;
    check_input(input);
    const auto shape = std::vector<int64_t>{1, input.size(1), 1, 1};
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(input.device());
    const at::Tensor mean = at::tensor(options_.mean, at::TensorOptions().dtype(at::kDouble)).to(f32).view(shape);
    const at::Tensor stddev = at::tensor(options_.std, at::TensorOptions().dtype(at::kDouble)).to(f32).view(shape);
    at::Tensor x = input.to(at::kFloat);
    if (input.scalar_type() == at::kByte) x = x.div(255.0);
    state.batch.inputs = x.sub(mean).div(stddev).to(options_.dtype);
  }

  /// The stage parameters for the fused pass, and a mark that this batch needs no eager transform.
  /// \throws std::invalid_argument as `apply`.
  kernels::stage::Normalize draw_fused_stage(State& state) {
    check_input(state.batch.inputs);
    fused_batch_ = state.timestamp.batch().count();
    return kernels::stage::Normalize{options_.mean, options_.std};
  }

 private:
  void check_input(const at::Tensor& input) const {
    functional::detail::check_image_batch(input, "NormalizeInputs");
    if (input.size(1) != static_cast<int64_t>(options_.mean.size()))
      functional::detail::fail("NormalizeInputs has " + std::to_string(options_.mean.size()) +
                               " channel mean(s) but the batch has " + std::to_string(input.size(1)) +
                               " channels (shape " + functional::detail::shape_of(input) + ")");
    if (input.scalar_type() != at::kByte && !at::isFloatingType(input.scalar_type()))
      functional::detail::fail(std::string("NormalizeInputs needs a uint8 or floating-point batch, got ") +
                               c10::toString(input.scalar_type()));
  }

  NormalizeInputsOptions options_;
  std::int64_t fused_batch_ = -1;
};

}  // namespace composer::algorithms
