#pragma once
/// \file
/// The metric protocol (`composer::metrics::Metric`), a metric of any type erased (`AnyMetric`) and a named set of
/// them (`MetricCollection`), as the Trainer's evaluators and training metrics hold them.

#include <concepts>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/state.hpp>

namespace composer::metrics {

/// A metric accumulates over batches and reports named values: `update(outputs, targets)` adds a batch (the
/// model's outputs and the batch's targets, on the training device), `compute()` returns the values over every
/// batch since the last `reset()` as `MetricValues` (NaN for a value with no sample yet, so that the names are
/// known before any batch), and it is copyable (each evaluator gets its own copy). Composer counterpart: a
/// `torchmetrics.Metric` of `ComposerModel.get_metrics()`.
template <class M>
concept Metric = std::copy_constructible<M> && requires(M& metric, const M& const_metric, const at::Tensor& tensor) {
  metric.update(tensor, tensor);
  { const_metric.compute() } -> std::convertible_to<MetricValues>;
  metric.reset();
};

/// A metric of any type satisfying `Metric`; copying it copies the metric with its accumulated state. Composer
/// counterpart: a `torchmetrics.Metric` object.
class AnyMetric {
 public:
  /// Holds a copy of `metric`. A type that is not a `Metric` is a compile error saying what it lacks.
  template <class M>
    requires(!std::is_same_v<std::remove_cvref_t<M>, AnyMetric>)
  AnyMetric(M&& metric)  // NOLINT(google-explicit-constructor): a metric is naturally an AnyMetric
      : object_(make_object(std::forward<M>(metric))), ops_(operations_for<M>()) {}

  AnyMetric(const AnyMetric& other) : object_(other.ops_->copy(other.object_.get())), ops_(other.ops_) {}
  AnyMetric(AnyMetric&&) noexcept = default;
  AnyMetric& operator=(const AnyMetric& other) {
    if (this != &other) object_ = other.ops_->copy(other.object_.get()), ops_ = other.ops_;
    return *this;
  }
  AnyMetric& operator=(AnyMetric&&) noexcept = default;
  ~AnyMetric() = default;

  /// Adds a batch of `outputs` against `targets`.
  void update(const at::Tensor& outputs, const at::Tensor& targets) { ops_->update(object_.get(), outputs, targets); }
  /// The values accumulated since the last reset.
  MetricValues compute() const { return ops_->compute(object_.get()); }
  /// Forgets every batch.
  void reset() { ops_->reset(object_.get()); }

 private:
  // The operations of one metric type, on its object held as `void*` (one static table per type).
  struct Operations {
    std::shared_ptr<void> (*copy)(const void* metric);
    void (*update)(void* metric, const at::Tensor& outputs, const at::Tensor& targets);
    MetricValues (*compute)(const void* metric);
    void (*reset)(void* metric);
  };
  template <class M>
  static constexpr Operations operations_of{
      [](const void* metric) -> std::shared_ptr<void> { return std::make_shared<M>(*static_cast<const M*>(metric)); },
      [](void* metric, const at::Tensor& outputs, const at::Tensor& targets) {
        static_cast<M*>(metric)->update(outputs, targets);
      },
      [](const void* metric) { return MetricValues(static_cast<const M*>(metric)->compute()); },
      [](void* metric) { static_cast<M*>(metric)->reset(); }};

  template <class M>
  static std::shared_ptr<void> make_object(M&& metric) {
    using T = std::remove_cvref_t<M>;
    static_assert(Metric<T>,
                  "composer: this type is not a metric: a metric needs update(outputs, targets), a const compute() "
                  "returning composer::MetricValues, reset(), and a copy constructor (see composer/metrics/metric.hpp)");
    if constexpr (Metric<T>)
      return std::make_shared<T>(std::forward<M>(metric));
    else
      return nullptr;
  }
  template <class M>
  static const Operations* operations_for() {
    using T = std::remove_cvref_t<M>;
    if constexpr (Metric<T>)
      return &operations_of<T>;
    else
      return nullptr;
  }

  // Never shared between two AnyMetrics: copies copy the object.
  std::shared_ptr<void> object_;
  const Operations* ops_ = nullptr;
};

/// Several metrics updated together, whose values are reported as one map: `{Accuracy{}, CrossEntropy{}}`. Two
/// metrics reporting the same value name are an error when computed. Composer counterpart: the dictionary of
/// metrics `ComposerModel.get_metrics()` returns (torchmetrics' `MetricCollection`).
class MetricCollection {
 public:
  /// No metric.
  MetricCollection() = default;
  /// The given metrics, in order.
  MetricCollection(std::initializer_list<AnyMetric> metrics) : metrics_(metrics) {}
  /// The given metrics, in order.
  explicit MetricCollection(std::vector<AnyMetric> metrics) : metrics_(std::move(metrics)) {}

  /// Adds a metric at the end.
  void add(AnyMetric metric) { metrics_.push_back(std::move(metric)); }
  /// Whether there is no metric.
  bool empty() const noexcept { return metrics_.empty(); }
  /// The number of metrics (not of values: a metric may report several).
  std::size_t size() const noexcept { return metrics_.size(); }

  /// Adds a batch to every metric.
  void update(const at::Tensor& outputs, const at::Tensor& targets) {
    for (auto& metric : metrics_) metric.update(outputs, targets);
  }
  /// Every metric's values, merged.
  /// \throws std::logic_error when two metrics report a value of the same name.
  MetricValues compute() const {
    MetricValues values;
    for (const auto& metric : metrics_)
      for (auto& [name, value] : metric.compute())
        if (!values.emplace(name, value).second)
          throw std::logic_error("composer: two metrics of one collection report a value named '" + name +
                                 "'; give each metric its own name");
    return values;
  }
  /// Resets every metric.
  void reset() {
    for (auto& metric : metrics_) metric.reset();
  }
  /// The names of the values `compute()` reports (those of fresh copies of the metrics).
  std::vector<std::string> value_names() const {
    MetricCollection fresh = *this;
    fresh.reset();
    std::vector<std::string> names;
    for (const auto& [name, value] : fresh.compute()) names.push_back(name);
    return names;
  }

 private:
  std::vector<AnyMetric> metrics_;
};

}  // namespace composer::metrics
