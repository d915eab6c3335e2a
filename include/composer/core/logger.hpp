#pragma once
/// \file
/// composer::Logger — the handle through which algorithms, callbacks and the trainer report metrics.

#include <map>
#include <string>

namespace composer {

/// Named scalar values, e.g. `{"loss/train/total", 0.31}`. Composer counterpart: the dict given to
/// `Logger.log_metrics`.
using Metrics = std::map<std::string, double>;

/// Named settings of a run, e.g. `{"rank_zero_seed", "42"}`. Composer counterpart: the dict given to
/// `Logger.log_hyperparameters`.
using Hyperparameters = std::map<std::string, std::string>;

/// Forwards what is logged to the logger destinations of an Engine (policies whose `role` is
/// `Role::logger`). The Engine builds it; each call goes straight to a fan-out the Engine generated at compile
/// time for its destinations. A default-constructed Logger discards everything.
/// Composer counterpart: `composer.loggers.Logger`.
class Logger {
 public:
  /// A logger with no destination.
  Logger() = default;

  /// Sends metrics to every destination that has `log_metrics(const Metrics&, const State&)`.
  /// Composer counterpart: `Logger.log_metrics`.
  void log_metrics(const Metrics& metrics) const {
    if (metrics_sink_ != nullptr) metrics_sink_(target_, metrics);
  }

  /// Sends hyperparameters to every destination that has `log_hyperparameters(const Hyperparameters&, const
  /// State&)`. Composer counterpart: `Logger.log_hyperparameters`.
  void log_hyperparameters(const Hyperparameters& hyperparameters) const {
    if (hyperparameters_sink_ != nullptr) hyperparameters_sink_(target_, hyperparameters);
  }

  /// Whether any destination receives metrics.
  bool has_metrics_destination() const noexcept { return metrics_sink_ != nullptr; }

  /// The sink types an Engine fills in.
  using MetricsSink = void (*)(void* target, const Metrics&);
  /// See `MetricsSink`.
  using HyperparametersSink = void (*)(void* target, const Hyperparameters&);

  /// A logger forwarding to `target` through the two fan-out functions (either may be null). Used by Engine.
  Logger(void* target, MetricsSink metrics_sink, HyperparametersSink hyperparameters_sink) noexcept
      : target_(target), metrics_sink_(metrics_sink), hyperparameters_sink_(hyperparameters_sink) {}

 private:
  void* target_ = nullptr;
  MetricsSink metrics_sink_ = nullptr;
  HyperparametersSink hyperparameters_sink_ = nullptr;
};

}  // namespace composer
