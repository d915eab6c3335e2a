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

/// A metric whose state can be summed over data-parallel ranks: `sum_state()` returns its additive state as a
/// 1-D tensor (the same length on every rank), and `load_sum_state(sum)` takes the sum of those over the ranks, so
/// that `compute()` then reports the whole data set. The Trainer reduces evaluation and training metrics this way
/// in a data-parallel run. Composer counterpart: a `torchmetrics.Metric`'s states with `dist_reduce_fx="sum"`.
template <class M>
concept ReducibleMetric = Metric<M> && requires(M& metric, const M& const_metric, const at::Tensor& tensor) {
  { const_metric.sum_state() } -> std::convertible_to<at::Tensor>;
  metric.load_sum_state(tensor);
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
  /// Whether the metric's state can be summed over data-parallel ranks (its type is a `ReducibleMetric`).
  bool reducible() const noexcept { return ops_->sum_state != nullptr; }
  /// The state to sum over the ranks, as a float64 CPU vector.
  /// \throws std::logic_error for a metric that is not reducible.
  at::Tensor sum_state() const {
    if (!reducible()) throw std::logic_error("composer: this metric has no sum_state(): it cannot be reduced over ranks");
    return ops_->sum_state(object_.get()).to(at::kCPU, at::kDouble).reshape({-1});
  }
  /// Takes the sum over the ranks of `sum_state()`.
  /// \throws std::logic_error for a metric that is not reducible.
  void load_sum_state(const at::Tensor& state) {
    if (!reducible()) throw std::logic_error("composer: this metric has no load_sum_state(): it cannot be reduced over ranks");
    ops_->load_sum_state(object_.get(), state);
  }

 private:
  // The operations of one metric type, on its object held as `void*` (one static table per type).
  struct Operations {
    std::shared_ptr<void> (*copy)(const void* metric);
    void (*update)(void* metric, const at::Tensor& outputs, const at::Tensor& targets);
    MetricValues (*compute)(const void* metric);
    void (*reset)(void* metric);
    at::Tensor (*sum_state)(const void* metric);                     // null unless a ReducibleMetric
    void (*load_sum_state)(void* metric, const at::Tensor& state);  // null unless a ReducibleMetric
  };
  template <class M>
  static constexpr auto sum_state_of() -> at::Tensor (*)(const void*) {
    if constexpr (ReducibleMetric<M>)
      return [](const void* metric) -> at::Tensor { return static_cast<const M*>(metric)->sum_state(); };
    else
      return nullptr;
  }
  template <class M>
  static constexpr auto load_sum_state_of() -> void (*)(void*, const at::Tensor&) {
    if constexpr (ReducibleMetric<M>)
      return [](void* metric, const at::Tensor& state) { static_cast<M*>(metric)->load_sum_state(state); };
    else
      return nullptr;
  }
  template <class M>
  static constexpr Operations operations_of{
      [](const void* metric) -> std::shared_ptr<void> { return std::make_shared<M>(*static_cast<const M*>(metric)); },
      [](void* metric, const at::Tensor& outputs, const at::Tensor& targets) {
        static_cast<M*>(metric)->update(outputs, targets);
      },
      [](const void* metric) { return MetricValues(static_cast<const M*>(metric)->compute()); },
      [](void* metric) { static_cast<M*>(metric)->reset(); },
      sum_state_of<M>(), load_sum_state_of<M>()};

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
  /// Whether every metric's state can be summed over data-parallel ranks.
  bool reducible() const noexcept {
    for (const auto& metric : metrics_)
      if (!metric.reducible()) return false;
    return true;
  }
  /// Every metric's `sum_state()`, concatenated (float64, CPU).
  at::Tensor sum_state() const {
    std::vector<at::Tensor> states;
    for (const auto& metric : metrics_) states.push_back(metric.sum_state());
    return states.empty() ? at::zeros({0}, at::kDouble) : at::cat(states);
  }
  /// Gives each metric its part of `state`, a concatenation of the form `sum_state()` returns.
  void load_sum_state(const at::Tensor& state) {
    std::int64_t offset = 0;
    for (auto& metric : metrics_) {
      const std::int64_t size = metric.sum_state().numel();
      if (offset + size > state.numel())
        throw std::invalid_argument("composer: MetricCollection::load_sum_state got " + std::to_string(state.numel()) +
                                    " values, fewer than its metrics' states hold");
      metric.load_sum_state(state.narrow(0, offset, size));
      offset += size;
    }
    if (offset != state.numel())
      throw std::invalid_argument("composer: MetricCollection::load_sum_state got " + std::to_string(state.numel()) +
                                  " values, its metrics' states hold " + std::to_string(offset));
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
