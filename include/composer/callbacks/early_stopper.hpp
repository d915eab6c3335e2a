#pragma once
/// \file
/// composer::callbacks::EarlyStopper — ends training when a metric has not improved for a while.

#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/callbacks/monitored_metric.hpp>
#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/trainer/state_archive.hpp>

namespace composer::callbacks {

/// How long an `EarlyStopper` waits for an improvement: a whole number of epochs (`3`), a time string in `ep` or
/// `ba` (`"3ep"`, `"500ba"`) or a `Time` in those units. Composer counterpart: the `patience` argument
/// (`int | str | Time`, an integer meaning epochs).
class Patience {
 public:
  /// `epochs` epochs.
  /// \throws std::invalid_argument for a negative count.
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  Patience(I epochs) : Patience(Time::from_epoch(static_cast<std::int64_t>(epochs))) {}  // NOLINT
  /// A time string in `ep` or `ba`, e.g. `"2ep"`.
  /// \throws std::invalid_argument naming the string when it is not a time, or not in ep or ba, or negative.
  Patience(const char* timestring) : Patience(parse(timestring == nullptr ? "" : timestring)) {}  // NOLINT
  /// A time string, as the `const char*` form.
  Patience(const std::string& timestring) : Patience(parse(timestring)) {}  // NOLINT
  /// A `Time` in `ep` or `ba`.
  /// \throws std::invalid_argument for another unit or a negative value.
  Patience(Time time) : time_(time) {  // NOLINT
    if (time_.unit() != TimeUnit::EPOCH && time_.unit() != TimeUnit::BATCH)
      checks::fail("EarlyStopper: patience must be in epochs (ep) or batches (ba), got " + time_.to_string());
    if (time_.count() < 0) checks::fail("EarlyStopper: patience must not be negative, got " + time_.to_string());
  }

  /// The patience as a time in `ep` or `ba`.
  const Time& time() const noexcept { return time_; }

 private:
  static Time parse(std::string_view text) {
    try {
      return Time::from_timestring(text);
    } catch (const std::invalid_argument& error) {
      checks::fail("EarlyStopper: patience '" + std::string(text) + "' is not a time in ep or ba (" + error.what() +
                   ")");
    }
  }

  Time time_ = Time::from_epoch(1);
};

/// Settings of an `EarlyStopper`, with Composer's defaults.
struct EarlyStopperOptions {
  /// The metric to watch, e.g. `"accuracy"` or `"cross_entropy"` (required).
  std::string monitor;
  /// The data loader the metric is computed on: `"eval"` for the Trainer's evaluation, `"train"` for training
  /// metrics (`State::train_metric_values["train"]`), or an evaluator's label (required).
  std::string dataloader_label;
  /// Whether a value is better than the best so far; by default from the metric's name (see `MetricComparison`).
  MetricComparison comp{};
  /// How much better than the best a value must be to count as an improvement (its absolute value is used).
  double min_delta = 0.0;
  /// How long the metric may go without improving, in ep or ba.
  Patience patience = 1;
};

/// EarlyStopper: each time the monitored metric is computed, compares it with the best value so far; a value
/// better by more than `min_delta` becomes the best, remembered with the time it occurred. When more than
/// `patience` has passed since then (`epoch - best_epoch > patience` for a patience in ep, the same in batches
/// for ba), it calls `State::stop_training()`, so the run ends after the current batch. The first value seen is
/// the first best.
///
/// When it looks: at `EVAL_END` and `EPOCH_END`, when the active data loader's label is `dataloader_label` (the
/// Trainer's evaluation runs under `"eval"`, its training under `"train"`), and at `BATCH_END` too for a patience
/// in ba. A metric that is not there when it looks is a std::invalid_argument naming it.
///
/// Its best value and when it occurred are checkpointed (`save_state`), so a resumed run stops where the
/// uninterrupted one does; Composer keeps no state for it, so a resumed Composer run starts counting afresh.
/// Composer counterpart: `composer.callbacks.EarlyStopper(monitor, dataloader_label, comp=None, min_delta=0.0,
/// patience=1)`.
class EarlyStopper {
 public:
  /// A callback: it runs after the algorithms.
  static constexpr Role role = Role::callback;
  /// Where the metric is looked at.
  static constexpr EventSet events{Event::BATCH_END, Event::EPOCH_END, Event::EVAL_END};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "EarlyStopper";

  /// Watches `monitor` on `dataloader_label`; see `EarlyStopperOptions` for the others.
  /// \throws std::invalid_argument for an empty monitor or label, an unknown `comp`, a NaN `min_delta` or a bad
  /// patience.
  EarlyStopper(std::string monitor, std::string dataloader_label, MetricComparison comp = {}, double min_delta = 0.0,
               Patience patience = 1)
      : EarlyStopper(EarlyStopperOptions{std::move(monitor), std::move(dataloader_label), std::move(comp), min_delta,
                                         patience}) {}

  /// An EarlyStopper with the given options: `EarlyStopper({.monitor = "accuracy", .dataloader_label = "eval",
  /// .patience = "2ep"})`.
  /// \throws std::invalid_argument as the positional form.
  explicit EarlyStopper(EarlyStopperOptions options) : options_(std::move(options)) {
    check_monitor_names(options_.monitor, options_.dataloader_label, "EarlyStopper");
    if (std::isnan(options_.min_delta)) checks::fail("EarlyStopper: min_delta must be a number, got nan");
    options_.min_delta = std::fabs(options_.min_delta);
    std::tie(comp_, comp_name_) = options_.comp.resolve(options_.monitor, "EarlyStopper");
  }

  /// The settings (`min_delta` as its absolute value).
  const EarlyStopperOptions& options() const noexcept { return options_; }
  /// The watched metric.
  const std::string& monitor() const noexcept { return options_.monitor; }
  /// The label of its data loader.
  const std::string& dataloader_label() const noexcept { return options_.dataloader_label; }
  /// The patience, in ep or ba.
  const Time& patience() const noexcept { return options_.patience.time(); }
  /// The comparison in use: `"greater"`, `"less"` or `"custom"`.
  const std::string& comparison() const noexcept { return comp_name_; }
  /// The best value so far; none before the first look.
  std::optional<double> best() const noexcept { return best_; }
  /// The epoch count when the best value occurred; none before the first look.
  std::optional<std::int64_t> best_epoch() const noexcept {
    return best_ ? std::optional<std::int64_t>(best_epoch_) : std::nullopt;
  }
  /// The batch count when the best value occurred; none before the first look.
  std::optional<std::int64_t> best_batch() const noexcept {
    return best_ ? std::optional<std::int64_t>(best_batch_) : std::nullopt;
  }

  /// Looks at the metric (see the class comment).
  void apply(auto event, State& state) {
    if constexpr (event == Event::BATCH_END)
      if (patience().unit() != TimeUnit::BATCH) return;
    if (state.dataloader_label != options_.dataloader_label) return;
    update(state);
  }

  /// Writes the best value and when it occurred.
  void save_state(torch::serialize::OutputArchive& archive) const {
    write_archived_integer(archive, "has_best", best_ ? 1 : 0);
    archive.write("best", at::tensor(std::vector<double>{best_.value_or(0.0)}, at::TensorOptions().dtype(at::kDouble)));
    write_archived_integer(archive, "best_epoch", best_epoch_);
    write_archived_integer(archive, "best_batch", best_batch_);
  }

  /// Restores what `save_state` wrote.
  void load_state(torch::serialize::InputArchive& archive) {
    const bool has_best = read_archived_integer(archive, "has_best") != 0;
    at::Tensor best;
    archive.read("best", best);
    const std::int64_t epoch = read_archived_integer(archive, "best_epoch");
    const std::int64_t batch = read_archived_integer(archive, "best_batch");
    best_ = has_best ? std::optional<double>(best.item<double>()) : std::nullopt;
    best_epoch_ = epoch;
    best_batch_ = batch;
  }

 private:
  void update(State& state) {
    const double value = read_monitored_metric(state, options_.monitor, options_.dataloader_label, "EarlyStopper");
    const std::int64_t epoch = state.timestamp.epoch().count();
    const std::int64_t batch = state.timestamp.batch().count();
    if (!best_ || (comp_(value, *best_) && std::fabs(value - *best_) > options_.min_delta)) {
      best_ = value;
      best_epoch_ = epoch;
      best_batch_ = batch;
    }
    const bool in_epochs = patience().unit() == TimeUnit::EPOCH;
    const std::int64_t waited = in_epochs ? epoch - best_epoch_ : batch - best_batch_;
    if (waited > patience().count()) state.stop_training();
  }

  EarlyStopperOptions options_;
  MetricComparison::Function comp_;
  std::string comp_name_;
  std::optional<double> best_;
  std::int64_t best_epoch_ = 0;
  std::int64_t best_batch_ = 0;
};

}  // namespace composer::callbacks
