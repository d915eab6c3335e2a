#pragma once
/// \file
/// composer::callbacks::ThresholdStopper — ends training when a metric crosses a threshold.

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include <composer/callbacks/monitored_metric.hpp>
#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>

namespace composer::callbacks {

/// Settings of a `ThresholdStopper`, with Composer's defaults.
struct ThresholdStopperOptions {
  /// The metric to watch, e.g. `"accuracy"` (required).
  std::string monitor;
  /// The data loader the metric is computed on: `"eval"`, `"train"` or an evaluator's label (required).
  std::string dataloader_label;
  /// The value that ends training once the metric is past it (required).
  double threshold = std::numeric_limits<double>::quiet_NaN();
  /// Whether the metric is past the threshold: `comp(value, threshold)`; by default from the metric's name, so
  /// a loss must fall below it and an accuracy rise above it (see `MetricComparison`).
  MetricComparison comp{};
  /// Also look at every `BATCH_END` (for training metrics), which may end training within an epoch.
  bool stop_on_batch = false;
};

/// ThresholdStopper: each time the monitored metric is computed, calls `State::stop_training()` (the run ends
/// after the current batch) when `comp(value, threshold)` holds; with the default comparison, when an accuracy
/// exceeds the threshold or a loss falls below it (strictly).
///
/// When it looks: at `EVAL_END` and `EPOCH_END`, and at `BATCH_END` too with `stop_on_batch`, each time only when
/// the active data loader's label is `dataloader_label` (the Trainer's evaluation runs under `"eval"`, its
/// training under `"train"`). A metric that is not there when it looks is a std::invalid_argument naming it.
/// It keeps no state. Composer counterpart: `composer.callbacks.ThresholdStopper(monitor, dataloader_label,
/// threshold, comp=None, stop_on_batch=False)`.
class ThresholdStopper {
 public:
  /// A callback: it runs after the algorithms.
  static constexpr Role role = Role::callback;
  /// Where the metric is looked at.
  static constexpr EventSet events{Event::BATCH_END, Event::EPOCH_END, Event::EVAL_END};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "ThresholdStopper";

  /// Stops once `monitor` on `dataloader_label` is past `threshold`; see `ThresholdStopperOptions`.
  /// \throws std::invalid_argument for an empty monitor or label, a NaN threshold or an unknown `comp`.
  ThresholdStopper(std::string monitor, std::string dataloader_label, double threshold, MetricComparison comp = {},
                   bool stop_on_batch = false)
      : ThresholdStopper(ThresholdStopperOptions{std::move(monitor), std::move(dataloader_label), threshold,
                                                 std::move(comp), stop_on_batch}) {}

  /// A ThresholdStopper with the given options: `ThresholdStopper({.monitor = "accuracy", .dataloader_label =
  /// "eval", .threshold = 0.9})`.
  /// \throws std::invalid_argument as the positional form.
  explicit ThresholdStopper(ThresholdStopperOptions options) : options_(std::move(options)) {
    check_monitor_names(options_.monitor, options_.dataloader_label, "ThresholdStopper");
    if (std::isnan(options_.threshold)) checks::fail("ThresholdStopper: threshold must be set to a number");
    std::tie(comp_, comp_name_) = options_.comp.resolve(options_.monitor, "ThresholdStopper");
  }

  /// The settings.
  const ThresholdStopperOptions& options() const noexcept { return options_; }
  /// The watched metric.
  const std::string& monitor() const noexcept { return options_.monitor; }
  /// The label of its data loader.
  const std::string& dataloader_label() const noexcept { return options_.dataloader_label; }
  /// The threshold.
  double threshold() const noexcept { return options_.threshold; }
  /// Whether it also looks at every `BATCH_END`.
  bool stop_on_batch() const noexcept { return options_.stop_on_batch; }
  /// The comparison in use: `"greater"`, `"less"` or `"custom"`.
  const std::string& comparison() const noexcept { return comp_name_; }

  /// Looks at the metric (see the class comment).
  void apply(auto event, State& state) {
    if constexpr (event == Event::BATCH_END)
      if (!options_.stop_on_batch) return;
    if (state.dataloader_label != options_.dataloader_label) return;
    const double value = read_monitored_metric(state, options_.monitor, options_.dataloader_label, "ThresholdStopper");
    if (comp_(value, options_.threshold)) state.stop_training();
  }

 private:
  ThresholdStopperOptions options_;
  MetricComparison::Function comp_;
  std::string comp_name_;
};

}  // namespace composer::callbacks
