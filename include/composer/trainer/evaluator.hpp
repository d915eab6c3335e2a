#pragma once
/// \file
/// composer::Evaluator — a named evaluation data set with its own metrics, interval and batch limit.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <composer/core/time.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/metrics/metric.hpp>

namespace composer {

/// One evaluation data set of the Trainer (`TrainerOptions::evaluators`), evaluated at its own interval: its
/// metrics are stored in `State::eval_metric_values[label]` and logged as `metrics/<label>/<name>`; use designated
/// initializers: `{.label = "val", .dataloader = loader, .eval_interval = Time("100ba")}`. Composer counterpart:
/// `composer.core.Evaluator`.
struct Evaluator {
  /// The evaluator's name: non-empty, unique among the Trainer's evaluators, not `"train"` (the label of the
  /// training metrics). Composer counterpart: `label`.
  std::string label;
  /// The data it evaluates on. Composer counterpart: `dataloader`.
  data::AnyLoader dataloader;
  /// Its own metrics; empty takes a copy of `TrainerOptions::eval_metrics`. Composer counterpart: none (Composer
  /// evaluators select among the model's metrics, which `metric_names` does here).
  metrics::MetricCollection metrics;
  /// Keep only the metric values whose name one of these regular expressions finds (case-insensitive search),
  /// e.g. `{"^accuracy$", "top5"}`; empty keeps all. A pattern matching no value is an error at construction.
  /// Composer counterpart: `metric_names`.
  std::vector<std::string> metric_names;
  /// How often to evaluate during `fit`, in ep, ba, sp or tok (0 disables); unset takes `TrainerOptions::eval_interval`.
  /// Composer counterpart: `eval_interval`.
  std::optional<Time> eval_interval;
  /// Evaluate on at most this many batches (positive, or -1 for all); unset takes
  /// `TrainerOptions::eval_subset_num_batches`. Composer counterpart: `subset_num_batches`.
  std::optional<std::int64_t> subset_num_batches;
};

}  // namespace composer
