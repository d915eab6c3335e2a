#pragma once
/// \file
/// What the stopping callbacks (`EarlyStopper`, `ThresholdStopper`) share: how a monitored metric is compared
/// (`MetricComparison`, Composer's `comp` argument) and where its latest value is read from the State
/// (`read_monitored_metric`).

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <composer/core/errors.hpp>
#include <composer/core/state.hpp>

namespace composer::callbacks {

/// How a stopper compares a metric's value with a reference (the best value so far, or a threshold):
/// `comp(current, reference)` is true when `current` is better. Composer counterpart: the `comp` argument of
/// `EarlyStopper` and `ThresholdStopper` (a string or a callable).
///
/// - default (`{}`): chosen from the metric's name: `less` when it contains `loss`, `error`, `perplexity` or
///   `entropy` (in any case), `greater` otherwise. Composer's list has no `entropy`; it is added so that this
///   library's `cross_entropy` metric counts as lower-is-better.
/// - `"greater"` or `"gt"`, `"less"` or `"lt"` (in any case);
/// - any callable `bool(double current, double reference)`.
class MetricComparison {
 public:
  /// The comparison a callable performs: true when `current` is better than `reference`.
  using Function = std::function<bool(double current, double reference)>;

  /// Chosen from the metric's name (see the class comment).
  MetricComparison() = default;
  /// By name: `"greater"`, `"gt"`, `"less"` or `"lt"`; a null pointer means the default. Other names are refused
  /// by the stopper that receives it, naming it.
  MetricComparison(const char* name) {  // NOLINT(google-explicit-constructor): `comp = "less"` reads as Composer
    if (name != nullptr) name_ = name;
  }
  /// By name, as the `const char*` form.
  MetricComparison(std::string name) : name_(std::move(name)) {}  // NOLINT(google-explicit-constructor)
  /// A callable `bool(double current, double reference)`.
  template <class F>
    requires(std::is_invocable_r_v<bool, F&, double, double> && !std::is_convertible_v<F, std::string>)
  MetricComparison(F function) : function_(std::move(function)) {}  // NOLINT(google-explicit-constructor)

  /// The comparison for a metric named `monitor`, and its name (`"greater"`, `"less"` or `"custom"`).
  /// \throws std::invalid_argument naming `who` for an unknown comparison name or an empty callable.
  std::pair<Function, std::string> resolve(std::string_view monitor, std::string_view who) const {
    if (function_) return {function_, "custom"};
    if (!name_) {
      const std::string lowered = lower(monitor);
      for (std::string_view lower_is_better : {"loss", "error", "perplexity", "entropy"})
        if (lowered.find(lower_is_better) != std::string::npos) return {std::less<double>{}, "less"};
      return {std::greater<double>{}, "greater"};
    }
    const std::string lowered = lower(*name_);
    if (lowered == "greater" || lowered == "gt") return {std::greater<double>{}, "greater"};
    if (lowered == "less" || lowered == "lt") return {std::less<double>{}, "less"};
    checks::fail(std::string(who) + ": comp '" + *name_ +
                 "' is not a comparison: use 'gt', 'greater', 'lt', 'less' or a callable bool(current, reference)");
  }

 private:
  static std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
  }

  std::optional<std::string> name_;
  Function function_;
};

/// Throws std::invalid_argument naming `who` unless `monitor` and `dataloader_label` are non-empty.
inline void check_monitor_names(const std::string& monitor, const std::string& dataloader_label, std::string_view who) {
  if (monitor.empty()) checks::fail(std::string(who) + ": monitor must name a metric, e.g. \"accuracy\"");
  if (dataloader_label.empty())
    checks::fail(std::string(who) +
                 ": dataloader_label must name the data loader of the metric: \"eval\", \"train\" or an evaluator's label");
}

/// The latest value of the metric `monitor` computed on the data loader labelled `dataloader_label`: with the
/// label `"train"`, `state.train_metric_values["train"]`; with any other label, `state.eval_metric_values[label]`
/// (the Trainer's evaluation stores its metrics under `"eval"`). Composer counterpart: the stoppers'
/// `_get_monitored_metric`.
/// \throws std::invalid_argument naming `who`, the metric and the label when there is no such value.
inline double read_monitored_metric(const State& state, const std::string& monitor, const std::string& dataloader_label,
                                    std::string_view who) {
  const bool train = dataloader_label == "train";
  const auto& by_label = train ? state.train_metric_values : state.eval_metric_values;
  std::string known = "none";
  if (const auto values = by_label.find(dataloader_label); values != by_label.end()) {
    if (const auto value = values->second.find(monitor); value != values->second.end()) return value->second;
    known.clear();
    for (const auto& [name, value] : values->second) known += (known.empty() ? "" : ", ") + name;
    if (known.empty()) known = "none";
  }
  checks::fail(std::string(who) + ": no metric '" + monitor + "' computed on the data loader labelled '" +
               dataloader_label + "' (its metrics: " + known + "); set dataloader_label to 'eval', 'train' or an "
               "evaluator's label, and monitor to one of its metrics");
}

}  // namespace composer::callbacks
