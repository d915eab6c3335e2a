#pragma once
/// \file
/// composer::algorithms::SelectiveBackprop — on scheduled batches, trains only on a subset of the samples that
/// favours those with the highest loss (Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest
/// Losers", arXiv:1910.00762).

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/core/Reduction.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/selective_backprop.hpp>
#include <composer/trainer/precision_context.hpp>

namespace composer::algorithms {

/// A loss with one value per sample: `(outputs, targets) -> losses of shape [N]`.
using PerSampleLoss = std::function<at::Tensor(const at::Tensor& outputs, const at::Tensor& targets)>;

/// Cross-entropy of each sample (reduction 'none'): class-index targets ([N] or [N, ...]) or probability targets
/// with the outputs' shape. For outputs with dimensions beyond [N, C] (segmentation), the per-element losses of a
/// sample are averaged, so the result is always [N].
inline at::Tensor per_sample_cross_entropy(const at::Tensor& outputs, const at::Tensor& targets) {
  at::Tensor losses;
  if (at::isFloatingType(targets.scalar_type()) && targets.sizes() == outputs.sizes())
    losses = -(targets * at::log_softmax(outputs, 1)).sum(1);
  else
    losses = at::cross_entropy_loss(outputs, targets, {}, at::Reduction::None);
  if (losses.dim() > 1) losses = losses.flatten(1).mean(1);
  return losses;
}

/// Settings of `SelectiveBackprop`, with Composer's defaults.
struct SelectiveBackpropOptions {
  /// Elapsed fraction of training from which selection runs, in [0, 1].
  double start = 0.5;
  /// Elapsed fraction of training at which selection stops (exclusive), in [start, 1].
  double end = 0.9;
  /// Fraction of each selected batch that is kept, in (0, 1]; 1 switches selection off.
  double keep = 0.5;
  /// Scale of the images in the scoring pass, in (0, 1]; below 1 they are downscaled (bilinear) for scoring only.
  double scale_factor = 1.0;
  /// Every `interrupt`-th batch of an epoch is a plain full batch; 0 selects on every batch in [start, end).
  std::int64_t interrupt = 2;
  /// The per-sample loss the samples are scored with (Composer uses the model's loss with reduction 'none').
  PerSampleLoss loss = per_sample_cross_entropy;
};

/// SelectiveBackprop: at `AFTER_DATALOADER`, on batches with start ≤ elapsed < end that are not interrupted
/// ((batch_in_epoch + 1) not a multiple of `interrupt`), scores every sample with the model (no gradients, under
/// the state's precision, on the state's device, images optionally downscaled by `scale_factor`) and the
/// per-sample loss, then keeps int(keep·N) distinct samples, drawn without replacement with probabilities that
/// grow with the loss rank (∝ ((r + ½)/N)^(1/keep − 1)), at full resolution. The model is left in its mode
/// (training), as in Composer. Runs first among algorithms, so that it sees the batch as loaded.
/// Composer counterpart: `composer.algorithms.SelectiveBackprop(start=0.5, end=0.9, keep=0.5, scale_factor=1,
/// interrupt=2)`.
class SelectiveBackprop {
 public:
  /// `INIT` checks that there is a model; `AFTER_DATALOADER` selects, when the schedule says so.
  static constexpr EventSet events{Event::INIT, Event::AFTER_DATALOADER};
  /// First among the algorithms on every event (Composer's `sort_selective_backprop_first` pass).
  static constexpr Placement placement = Placement::first;
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "SelectiveBackprop";

  /// SelectiveBackprop with Composer's defaults and per-sample cross-entropy.
  SelectiveBackprop() : SelectiveBackprop(SelectiveBackpropOptions{}) {}

  /// SelectiveBackprop with Composer's arguments, in Composer's order, and per-sample cross-entropy.
  /// \throws std::invalid_argument as the options constructor.
  explicit SelectiveBackprop(double start, double end = 0.9, double keep = 0.5, double scale_factor = 1.0,
                             std::int64_t interrupt = 2)
      : SelectiveBackprop(SelectiveBackpropOptions{
            .start = start, .end = end, .keep = keep, .scale_factor = scale_factor, .interrupt = interrupt}) {}

  /// SelectiveBackprop with the given options: `SelectiveBackprop({.start = 0, .end = 1, .keep = 0.25})`.
  /// \throws std::invalid_argument unless 0 ≤ start ≤ end ≤ 1, 0 < keep ≤ 1, 0 < scale_factor ≤ 1,
  ///         interrupt ≥ 0, and a loss is given.
  explicit SelectiveBackprop(SelectiveBackpropOptions options) : options_(std::move(options)) {
    using checks::fail;
    using checks::num;
    if (!(options_.start >= 0.0 && options_.start <= 1.0))
      fail("SelectiveBackprop start must be in [0, 1], got " + num(options_.start));
    if (!(options_.end >= options_.start && options_.end <= 1.0))
      fail("SelectiveBackprop end must be in [start, 1] = [" + num(options_.start) + ", 1], got " + num(options_.end));
    if (!(options_.keep > 0.0 && options_.keep <= 1.0))
      fail("SelectiveBackprop keep must be in (0, 1], got " + num(options_.keep));
    if (!(options_.scale_factor > 0.0 && options_.scale_factor <= 1.0))
      fail("SelectiveBackprop scale_factor must be in (0, 1], got " + num(options_.scale_factor));
    if (options_.interrupt < 0)
      fail("SelectiveBackprop interrupt must be >= 0, got " + std::to_string(options_.interrupt));
    if (!options_.loss) fail("SelectiveBackprop needs a per-sample loss, got an empty function");
  }

  /// The settings.
  const SelectiveBackpropOptions& options() const noexcept { return options_; }

  /// Whether this batch is selected: always true on `INIT`; on `AFTER_DATALOADER`, keep < 1 and
  /// `should_selective_backprop(elapsed, batch_in_epoch, start, end, interrupt)`.
  /// \throws std::logic_error on `AFTER_DATALOADER` without a max_duration.
  bool match(Event event, const State& state) const {
    if (event == Event::INIT) return true;
    if (event != Event::AFTER_DATALOADER || !(options_.keep < 1.0)) return false;
    const auto elapsed = state.get_elapsed_duration();
    if (!elapsed) throw std::logic_error("composer: SelectiveBackprop needs the state's max_duration");
    return functional::should_selective_backprop(elapsed->value(), state.timestamp.batch_in_epoch().count(),
                                                 options_.start, options_.end, options_.interrupt);
  }

  /// Checks the model (`INIT`) or replaces `state.batch` by the selected subset, on the state's device
  /// (`AFTER_DATALOADER`).
  void apply(auto event, State& state) {
    if constexpr (event == Event::INIT) {
      if (!state.model) checks::fail("SelectiveBackprop needs a model in the state");
    } else if constexpr (event == Event::AFTER_DATALOADER) {
      Batch& batch = state.batch;
      if (batch.inputs.device() != state.device) batch.inputs = batch.inputs.to(state.device);
      if (batch.targets.device() != state.device) batch.targets = batch.targets.to(state.device);
      const Model& model = state.model;
      PrecisionContext precision(state.precision, state.device);
      auto [input, target] = functional::select_using_loss(
          batch.inputs, batch.targets, [&model](const at::Tensor& x) { return model.forward(x); }, options_.loss,
          options_.keep, options_.scale_factor);
      batch.inputs = std::move(input);
      batch.targets = std::move(target);
    }
  }

 private:
  SelectiveBackpropOptions options_;
};

}  // namespace composer::algorithms
