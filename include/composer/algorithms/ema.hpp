#pragma once
/// \file
/// composer::algorithms::EMA — keeps an exponential moving average of the model's weights during training
/// and evaluates with it.

#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/functional/ema.hpp>
#include <composer/trainer/state_archive.hpp>

namespace composer::algorithms {

/// Settings of `EMA`, with Composer's defaults. Exactly one of `half_life` and `smoothing` must be set (so
/// set `.half_life = std::nullopt` when giving `smoothing`).
struct EMAOptions {
  /// Half life of a term of the average, in `ba` or `ep` (the unit of `update_interval`), > 0.
  std::optional<Time> half_life = Time::from_batch(1000);
  /// The smoothing coefficient s in [0, 1], used as given (not adjusted to `update_interval`).
  std::optional<double> smoothing;
  /// When averaging starts, in `dur` or in a counter unit (`ba`, `ep`, ...).
  Time ema_start = Time::from_duration(0.0);
  /// Update every this many batches or epochs, > 0; default: 1 in the unit of `half_life`, or `1ba`.
  std::optional<Time> update_interval;
};

/// EMA: keeps W_ema ← s·W_ema + (1 − s)·W for the trainable parameters and all buffers (integer buffers
/// truncate), with s = 2^(−update_interval / half_life) or the given smoothing, and evaluates with it.
/// - `INIT`: copies the model's weights (so a checkpoint's EMA state has somewhere to go).
/// - `BATCH_END` (interval in `ba`) or `EPOCH_END` (in `ep`): the first time the elapsed time reaches
///   `ema_start`, re-copies the model's weights and starts; once started, updates when the batch (epoch)
///   count is a multiple of the interval.
/// - `EVAL_START`: swaps the EMA weights into the model (and the training weights into the EMA storage);
///   `EVAL_END` and `BATCH_START`: swaps the training weights back.
/// - `FIT_START`, `EVAL_START`, `PREDICT_START`: moves the EMA tensors to the model's device (after a load).
/// Before `ema_start` nothing is swapped. Checkpoints hold the EMA tensors and both flags; the model entry of
/// a checkpoint holds the training weights. After training, `get_ema_model(module)` copies the EMA weights
/// into a module. Composer counterpart: `composer.algorithms.EMA(half_life='1000ba', smoothing=None,
/// ema_start='0.0dur', update_interval=None)`.
class EMA {
 public:
  /// EMA's events (updates on `BATCH_END` or `EPOCH_END` only, by the interval's unit).
  static constexpr EventSet events{Event::INIT,      Event::FIT_START,  Event::BATCH_START,
                                   Event::BATCH_END, Event::EPOCH_END,  Event::EVAL_START,
                                   Event::EVAL_END,  Event::PREDICT_START};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "EMA";

  /// EMA with Composer's defaults (half life 1000 batches, updated every batch).
  EMA() : EMA(EMAOptions{}) {}

  /// EMA with the given options: `EMA({.half_life = Time("10ba")})`,
  /// `EMA({.half_life = std::nullopt, .smoothing = 0.9, .update_interval = Time("1ep")})`.
  /// \throws std::invalid_argument when neither or both of half_life and smoothing are set, for an interval
  ///         not in `ba`/`ep` or not positive, a half life in another unit than the interval or not positive,
  ///         or a smoothing outside [0, 1].
  explicit EMA(EMAOptions options) : options_(std::move(options)) {
    using checks::fail;
    using checks::num;
    if (!options_.half_life && !options_.smoothing) fail("EMA needs either half_life or smoothing");
    if (options_.half_life && options_.smoothing) fail("EMA takes only one of half_life and smoothing");
    interval_ = options_.update_interval.value_or(options_.half_life ? Time(1, options_.half_life->unit())
                                                                     : Time::from_batch(1));
    if (interval_.unit() != TimeUnit::BATCH && interval_.unit() != TimeUnit::EPOCH)
      fail("EMA update_interval must be in ba or ep, got " + interval_.to_string());
    if (interval_.count() <= 0) fail("EMA update_interval must be positive, got " + interval_.to_string());
    if (options_.half_life) {
      if (options_.half_life->unit() != interval_.unit())
        fail("EMA half_life (" + options_.half_life->to_string() + ") and update_interval (" + interval_.to_string() +
             ") must have the same unit");
      if (!(options_.half_life->value() > 0))
        fail("EMA half_life must be positive, got " + options_.half_life->to_string());
      smoothing_ = std::pow(2.0, -(interval_.value() / options_.half_life->value()));
    } else {
      smoothing_ = *options_.smoothing;
      if (!(smoothing_ >= 0.0 && smoothing_ <= 1.0)) fail("EMA smoothing must be in [0, 1], got " + num(smoothing_));
    }
  }

  /// The settings.
  const EMAOptions& options() const noexcept { return options_; }
  /// The smoothing coefficient s in use.
  double smoothing() const noexcept { return smoothing_; }
  /// The update interval in use.
  const Time& update_interval() const noexcept { return interval_; }
  /// Whether averaging has started.
  bool ema_started() const noexcept { return started_; }
  /// Whether the model currently holds the EMA weights (between `EVAL_START` and `EVAL_END`).
  bool ema_weights_active() const noexcept { return active_; }
  /// The stored tensors: the EMA weights, or the training weights while `ema_weights_active()`.
  const functional::EMAParameters& ema_parameters() const noexcept { return ema_; }

  /// Copies the EMA weights into `module` (e.g. the model after training) and returns it.
  /// \throws std::logic_error while the EMA weights are already in the trained model.
  torch::nn::Module& get_ema_model(torch::nn::Module& module) const {
    if (active_) throw std::logic_error("composer: the EMA weights are currently in the model");
    ema_.transfer_ema_params(module);
    return module;
  }
  /// Copies the training weights into `module` while the EMA weights are in the model, and returns it.
  /// \throws std::logic_error when the training weights are in the model.
  torch::nn::Module& get_training_model(torch::nn::Module& module) const {
    if (!active_) throw std::logic_error("composer: the training weights are currently in the model");
    ema_.transfer_ema_params(module);
    return module;
  }

  /// Runs EMA's part of `event` (see the class comment).
  void apply(auto event, State& state) {
    constexpr Event e = decltype(event)::value;
    torch::nn::Module& model = state.model.module();
    if constexpr (e == Event::INIT) {
      ema_ = functional::EMAParameters(model);
    } else if constexpr (e == Event::FIT_START || e == Event::PREDICT_START) {
      if (started_) ema_.move_params_to_device(model);
    } else if constexpr (e == Event::BATCH_START || e == Event::EVAL_END) {
      if (started_) ensure_training_weights(model);
    } else if constexpr (e == Event::EVAL_START) {
      if (started_) {
        ema_.move_params_to_device(model);
        ensure_ema_weights(model);
      }
    } else if constexpr (e == Event::BATCH_END || e == Event::EPOCH_END) {
      if ((e == Event::BATCH_END) != (interval_.unit() == TimeUnit::BATCH)) return;
      if (!started_ && should_start(state)) {
        ema_ = functional::EMAParameters(model);
        started_ = true;
      }
      if (started_ && state.timestamp.get(interval_.unit()).count() % interval_.count() == 0)
        functional::compute_ema(model, ema_, smoothing_);
    }
  }

  /// Saves the stored tensors and the two flags.
  void save_state(torch::serialize::OutputArchive& archive) const {
    write_archived_integer(archive, "ema_started", started_ ? 1 : 0);
    write_archived_integer(archive, "ema_weights_active", active_ ? 1 : 0);
    write_named_tensors(archive, "parameters", ema_.named_parameters());
    write_named_tensors(archive, "buffers", ema_.named_buffers());
  }

  /// Restores what `save_state` wrote (the tensors move to the model's device at the next FIT_START,
  /// EVAL_START or PREDICT_START).
  void load_state(torch::serialize::InputArchive& archive) {
    const bool started = read_archived_integer(archive, "ema_started") != 0;
    const bool active = read_archived_integer(archive, "ema_weights_active") != 0;
    functional::EMAParameters loaded;
    loaded.named_parameters() = read_named_tensors(archive, "parameters");
    loaded.named_buffers() = read_named_tensors(archive, "buffers");
    ema_ = std::move(loaded);
    started_ = started;
    active_ = active;
  }

 private:
  bool should_start(const State& state) const {
    if (options_.ema_start.unit() == TimeUnit::DURATION) {
      const auto elapsed = state.get_elapsed_duration();
      return elapsed && options_.ema_start <= *elapsed;
    }
    return options_.ema_start.value() <= state.timestamp.get(options_.ema_start.unit()).value();
  }
  void ensure_training_weights(torch::nn::Module& model) {
    if (!active_) return;
    ema_.swap_params(model);
    active_ = false;
  }
  void ensure_ema_weights(torch::nn::Module& model) {
    if (active_) return;
    ema_.swap_params(model);
    active_ = true;
  }

  EMAOptions options_;
  Time interval_ = Time::from_batch(1);
  double smoothing_ = 0.0;
  functional::EMAParameters ema_;
  bool started_ = false;
  bool active_ = false;
};

}  // namespace composer::algorithms
