#pragma once
/// \file
/// The Trainer's evaluators resolved against its options (`eval_dataloader` as the evaluator `"eval"`, then
/// `evaluators`), each checked, with its own metrics, interval, batch limit and the batch it last evaluated at.

#include <cstdint>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/trainer/interval.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/metrics/metric.hpp>
#include <composer/trainer/evaluator.hpp>
#include <composer/trainer/trainer_options.hpp>

namespace composer {

/// An `Evaluator` with the Trainer's defaults filled in. Composer counterpart: an `Evaluator` after
/// `ensure_evaluator` and the Trainer's metric filtering.
struct ScheduledEvaluator {
  /// The evaluator's label.
  std::string label;
  /// Its data.
  data::AnyLoader dataloader;
  /// Its own copy of its metrics.
  metrics::MetricCollection metrics;
  /// The names of the metric values kept (from `metric_names`); none keeps every value.
  std::optional<std::set<std::string>> kept_values;
  /// Its interval in ep, ba, sp or tok (0: only when asked for by `Trainer::eval`).
  Time interval;
  /// At most this many batches per evaluation (-1: all).
  std::int64_t subset_num_batches = -1;
  /// The training batch count it last evaluated at (-1: not yet), so that `fit` does not evaluate twice there.
  std::int64_t last_eval_batch = -1;

  /// `values` without those `metric_names` did not select.
  MetricValues keep_selected(MetricValues values) const {
    if (!kept_values) return values;
    std::erase_if(values, [&](const auto& entry) { return !kept_values->contains(entry.first); });
    return values;
  }
};

/// `evaluator` resolved against `options`: the Trainer's metrics, interval and batch limit where it sets none,
/// `metric_names` turned into the value names they select.
/// \throws std::invalid_argument naming the evaluator and the problem: an empty or reserved (`"train"`) label, no
/// data loader, no metric, an interval not in ep, ba, sp or tok, a batch limit neither positive nor -1, or a `metric_names`
/// entry that is not a regular expression or selects no value.
inline ScheduledEvaluator schedule_evaluator(const Evaluator& evaluator, const TrainerOptions& options) {
  const std::string who = "composer: evaluator '" + evaluator.label + "'";
  if (evaluator.label.empty()) throw std::invalid_argument("composer: an evaluator needs a label");
  if (evaluator.label == "train")
    throw std::invalid_argument(who + ": the label 'train' is reserved for the training metrics; choose another");
  if (!evaluator.dataloader) throw std::invalid_argument(who + " has no data loader");
  ScheduledEvaluator scheduled{evaluator.label,
                               evaluator.dataloader,
                               evaluator.metrics.empty() ? options.eval_metrics : evaluator.metrics,
                               std::nullopt,
                               evaluator.eval_interval.value_or(options.eval_interval),
                               evaluator.subset_num_batches.value_or(options.eval_subset_num_batches)};
  if (scheduled.metrics.empty())
    throw std::invalid_argument(who + " has no metric: set its metrics or TrainerOptions::eval_metrics");
  if (!counted_interval_unit(scheduled.interval.unit()))
    throw std::invalid_argument(who + ": eval_interval must be in ep, ba, sp or tok, got " + scheduled.interval.to_string());
  if (scheduled.subset_num_batches == 0 || scheduled.subset_num_batches < -1)
    throw std::invalid_argument(who + ": subset_num_batches must be positive or -1 (all batches), got " +
                                std::to_string(scheduled.subset_num_batches));
  scheduled.metrics.reset();
  if (!evaluator.metric_names.empty()) {
    const std::vector<std::string> names = scheduled.metrics.value_names();
    std::string known;
    for (const auto& name : names) known += (known.empty() ? "" : ", ") + name;
    scheduled.kept_values.emplace();
    for (const auto& pattern : evaluator.metric_names) {
      std::regex expression;
      try {
        expression = std::regex(pattern, std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& error) {
        throw std::invalid_argument(who + ": metric_names entry '" + pattern + "' is not a regular expression (" +
                                    error.what() + ")");
      }
      bool matched = false;
      for (const auto& name : names)
        if (std::regex_search(name, expression)) scheduled.kept_values->insert(name), matched = true;
      if (!matched)
        throw std::invalid_argument(who + ": metric_names entry '" + pattern + "' selects none of its metrics (" +
                                    known + ")");
    }
  }
  return scheduled;
}

/// Every evaluator of `options`: `eval_dataloader`, when set, as the evaluator `"eval"`, then `evaluators` in order.
/// \throws std::invalid_argument for an evaluator `schedule_evaluator` refuses, or two with the same label.
inline std::vector<ScheduledEvaluator> schedule_evaluators(const TrainerOptions& options) {
  std::vector<ScheduledEvaluator> scheduled;
  if (options.eval_dataloader)
    scheduled.push_back(schedule_evaluator(Evaluator{.label = "eval", .dataloader = options.eval_dataloader}, options));
  for (const auto& evaluator : options.evaluators) {
    for (const auto& earlier : scheduled)
      if (earlier.label == evaluator.label)
        throw std::invalid_argument(
            "composer: two evaluators are labelled '" + evaluator.label + "'" +
            (evaluator.label == "eval" ? " (eval_dataloader is the evaluator 'eval')" : std::string()) +
            "; labels must be unique");
    scheduled.push_back(schedule_evaluator(evaluator, options));
  }
  return scheduled;
}

}  // namespace composer
