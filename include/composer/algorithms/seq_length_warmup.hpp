#pragma once
/// \file
/// composer::algorithms::SeqLengthWarmup — training on short sequences first, growing them linearly to full length
/// (Li et al. 2021, "The Stability-Efficiency Dilemma", arXiv:2108.06084).

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/seq_length_warmup.hpp>
#include <composer/trainer/precision_context.hpp>

namespace composer::algorithms {

/// Settings of `SeqLengthWarmup`, with Composer's defaults.
struct SeqLengthWarmupOptions {
  /// Fraction of training over which the length grows, in [0, 1].
  double duration = 0.3;
  /// The first length.
  std::int64_t min_seq_length = 8;
  /// The final length (longer batches are cut to it).
  std::int64_t max_seq_length = 1024;
  /// The length grows in steps of this many tokens.
  std::int64_t step_size = 8;
  /// Cut each sequence (true) or reshape the batch's tokens into more, shorter sequences (false).
  bool truncate = true;
};

/// SeqLengthWarmup: at `AFTER_DATALOADER`, cuts the training batch [B, S] to the scheduled length
/// (`functional::seq_length_warmup_length` over the run's length in its own unit — batches for ep and ba, as in
/// Composer, or tokens or samples when `max_duration` is in tok or sp — then `functional::set_batch_sequence_length`)
/// and logs it as metric `seq_length_warmup/curr_seq_len`. On the first `AFTER_DATALOADER` it first runs one forward
/// and backward pass on the batch at its longest training length, min(max_seq_length, S), under the state's
/// precision, then drops the gradients, so that the memory of the longest step is allocated up front (Composer's
/// `_activate_model`). `INIT` checks the settings against nothing but the model's presence. Composer counterpart:
/// `composer.algorithms.SeqLengthWarmup(duration=0.3, min_seq_length=8, max_seq_length=1024, step_size=8,
/// truncate=True, preserve_end_of_sequence=False)`.
class SeqLengthWarmup {
 public:
  /// `INIT` checks; `AFTER_DATALOADER` cuts.
  static constexpr EventSet events{Event::INIT, Event::AFTER_DATALOADER};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "SeqLengthWarmup";

  /// SeqLengthWarmup with Composer's defaults.
  SeqLengthWarmup() : SeqLengthWarmup(SeqLengthWarmupOptions{}) {}
  /// SeqLengthWarmup with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit SeqLengthWarmup(double duration, std::int64_t min_seq_length = 8, std::int64_t max_seq_length = 1024,
                           std::int64_t step_size = 8, bool truncate = true)
      : SeqLengthWarmup(SeqLengthWarmupOptions{.duration = duration,
                                               .min_seq_length = min_seq_length,
                                               .max_seq_length = max_seq_length,
                                               .step_size = step_size,
                                               .truncate = truncate}) {}
  /// SeqLengthWarmup with the given options: `SeqLengthWarmup({.duration = 0.5, .max_seq_length = 128})`.
  /// \throws std::invalid_argument unless 0 ≤ duration ≤ 1, step_size ≥ 1 and 1 ≤ min_seq_length ≤ max_seq_length.
  explicit SeqLengthWarmup(const SeqLengthWarmupOptions& options) : options_(options) {
    (void)functional::seq_length_warmup_length(0, 0, options_.duration, options_.min_seq_length,
                                               options_.max_seq_length, options_.step_size);
  }

  /// The settings.
  const SeqLengthWarmupOptions& options() const noexcept { return options_; }
  /// The length the last batch was cut to (0 before the first batch).
  std::int64_t current_length() const noexcept { return current_length_; }

  /// The length scheduled for the coming batch of `state`.
  /// \throws std::invalid_argument without a max_duration, or with one in epochs and no known epoch length.
  std::int64_t scheduled_length(const State& state) const {
    const auto& max_duration = state.max_duration();
    if (!max_duration) checks::fail("SeqLengthWarmup needs the state's max_duration");
    std::int64_t total = 0, elapsed = 0;
    switch (max_duration->unit()) {
      case TimeUnit::EPOCH:
        if (!state.dataloader_len)
          checks::fail("SeqLengthWarmup with max_duration " + max_duration->to_string() +
                       " needs the training data's batches per epoch");
        total = *state.dataloader_len * max_duration->count();
        elapsed = state.timestamp.batch().count();
        break;
      case TimeUnit::BATCH:
      case TimeUnit::TOKEN:
      case TimeUnit::SAMPLE:
        total = max_duration->count();
        elapsed = state.timestamp.get(max_duration->unit()).count();
        break;
      default:
        checks::fail("SeqLengthWarmup needs max_duration in ep, ba, tok or sp, got " + max_duration->to_string());
    }
    return functional::seq_length_warmup_length(elapsed, total, options_.duration, options_.min_seq_length,
                                                options_.max_seq_length, options_.step_size);
  }

  /// Checks for a model (`INIT`), or warms up once and cuts the batch (`AFTER_DATALOADER`).
  void apply(auto event, State& state, const Logger& logger) {
    if constexpr (event == Event::INIT) {
      if (!state.model) checks::fail("SeqLengthWarmup needs a model in the state");
    } else if constexpr (event == Event::AFTER_DATALOADER) {
      if (state.batch.inputs.dim() != 2)
        checks::fail("SeqLengthWarmup needs token batches of shape [B, S], got inputs of " +
                     std::to_string(state.batch.inputs.dim()) + " dimension(s)");
      if (!warmed_up_) {
        warm_up_memory(state);
        warmed_up_ = true;
      }
      current_length_ = scheduled_length(state);
      state.batch = functional::set_batch_sequence_length(state.batch, current_length_, options_.truncate);
      logger.log_metrics({{"seq_length_warmup/curr_seq_len", static_cast<double>(current_length_)}});
    }
  }

 private:
  // One forward and backward pass at the longest training length, gradients dropped afterwards.
  void warm_up_memory(State& state) const {
    const std::int64_t length = std::min(options_.max_seq_length, state.batch.inputs.size(1));
    const Batch longest = functional::set_batch_sequence_length(state.batch, length, true);
    const at::Tensor inputs = longest.inputs.to(state.device);
    const at::Tensor targets = longest.targets.to(state.device);
    {
      PrecisionContext precision(state.precision, state.device);
      state.model.loss(state.model.forward(inputs), targets).backward();
    }
    for (auto& parameter : state.model->parameters()) parameter.mutable_grad().reset();
  }

  SeqLengthWarmupOptions options_;
  bool warmed_up_ = false;
  std::int64_t current_length_ = 0;
};

}  // namespace composer::algorithms
