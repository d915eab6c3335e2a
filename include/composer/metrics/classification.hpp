#pragma once
/// \file
/// Classification metrics: top-k accuracy, per-class accuracy and mean cross-entropy of logits [N, C] against
/// class-index targets [N] or probability targets [N, C] (mixed labels), accumulated on the logits' device.

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/state.hpp>
#include <composer/metrics/metric.hpp>

namespace composer::metrics {

namespace detail {
/// Checks `logits` [N, C] against `targets` ([N] class indices or [N, C] probabilities) for `metric`, and returns
/// the targets as class indices on the logits' device (a probability target's class is its arg-max).
inline at::Tensor class_labels(const at::Tensor& logits, const at::Tensor& targets, const char* metric) {
  const std::string who = std::string("composer: ") + metric;
  if (logits.dim() != 2)
    throw std::invalid_argument(who + " needs logits of shape [N, C], got " + std::to_string(logits.dim()) +
                                " dimension(s)");
  if (targets.dim() == 0 || targets.size(0) != logits.size(0))
    throw std::invalid_argument(who + " got " + std::to_string(logits.size(0)) + " outputs but " +
                                (targets.dim() == 0 ? std::string("a scalar target")
                                                    : std::to_string(targets.size(0)) + " targets"));
  if (at::isFloatingType(targets.scalar_type())) {
    if (targets.dim() != 2 || targets.size(1) != logits.size(1))
      throw std::invalid_argument(who + " needs probability targets of shape [N, " + std::to_string(logits.size(1)) +
                                  "] (or class indices [N]), got " + std::to_string(targets.dim()) + " dimension(s)");
    return targets.argmax(1).to(logits.device());
  }
  if (targets.dim() != 1)
    throw std::invalid_argument(who + " needs class-index targets of shape [N] (or probabilities [N, C]), got " +
                                std::to_string(targets.dim()) + " dimensions");
  return targets.to(logits.device(), at::kLong);
}

/// `numerator / denominator` as a double, NaN when the denominator is zero.
inline double ratio_or_nan(double numerator, double denominator) {
  return denominator == 0 ? std::numeric_limits<double>::quiet_NaN() : numerator / denominator;
}

// `state` as a float64 CPU vector of `size` values, or an error naming `metric`.
inline at::Tensor checked_sum_state(const at::Tensor& state, std::int64_t size, const char* metric) {
  if (!state.defined() || state.dim() != 1 || state.size(0) != size)
    throw std::invalid_argument(std::string("composer: ") + metric + "::load_sum_state needs a vector of " +
                                std::to_string(size) + " values, got " +
                                (state.defined() ? std::to_string(state.numel()) + " in " + std::to_string(state.dim()) +
                                                       " dimension(s)"
                                                 : std::string("an undefined tensor")));
  return state.to(at::kCPU, at::kDouble);
}
}  // namespace detail

/// The fraction of samples whose class is among the `top_k` largest logits, reported as `accuracy` (top 1) or
/// `top<k>_accuracy`. Composer counterpart: `torchmetrics.classification.MulticlassAccuracy(top_k=k,
/// average='micro')`.
class Accuracy {
 public:
  /// Top-1 accuracy.
  Accuracy() = default;
  /// Top-`top_k` accuracy.
  /// \throws std::invalid_argument unless `top_k` is positive.
  explicit Accuracy(std::int64_t top_k) : top_k_(top_k) {
    if (top_k < 1) throw std::invalid_argument("composer: Accuracy's top_k must be positive, got " + std::to_string(top_k));
  }

  /// Adds a batch of logits [N, C] and targets.
  void update(const at::Tensor& logits, const at::Tensor& targets) {
    const at::Tensor labels = detail::class_labels(logits, targets, "Accuracy");
    if (top_k_ > logits.size(1))
      throw std::invalid_argument("composer: Accuracy's top_k " + std::to_string(top_k_) + " exceeds the " +
                                  std::to_string(logits.size(1)) + " classes of the logits");
    const at::Tensor hits = top_k_ == 1 ? logits.argmax(1).eq(labels)
                                        : std::get<1>(logits.topk(top_k_, 1)).eq(labels.unsqueeze(1)).any(1);
    const at::Tensor batch_correct = hits.sum();
    correct_ = correct_.defined() ? correct_ + batch_correct : batch_correct;
    count_ += logits.size(0);
  }
  /// `{name(): correct / samples}`; NaN before any sample.
  MetricValues compute() const {
    return {{name(), detail::ratio_or_nan(correct_.defined() ? static_cast<double>(correct_.item<std::int64_t>()) : 0.0,
                                          static_cast<double>(count_))}};
  }
  /// Forgets every sample.
  void reset() { correct_ = at::Tensor(), count_ = 0; }
  /// The state to sum over data-parallel ranks: float64 {correct, samples} on the CPU.
  at::Tensor sum_state() const {
    return at::tensor(std::vector<double>{correct_.defined() ? static_cast<double>(correct_.item<std::int64_t>()) : 0.0,
                                          static_cast<double>(count_)},
                      at::kDouble);
  }
  /// Takes a state of the form `sum_state()` returns (summed over the ranks).
  void load_sum_state(const at::Tensor& state) {
    const at::Tensor values = detail::checked_sum_state(state, 2, "Accuracy");
    correct_ = at::tensor(static_cast<std::int64_t>(values[0].item<double>()), at::kLong);
    count_ = static_cast<std::int64_t>(values[1].item<double>());
  }
  /// `accuracy`, or `top<k>_accuracy` for k > 1.
  std::string name() const { return top_k_ == 1 ? "accuracy" : "top" + std::to_string(top_k_) + "_accuracy"; }

 private:
  std::int64_t top_k_ = 1;
  at::Tensor correct_;  // on the logits' device, so that an update does not wait for it
  std::int64_t count_ = 0;
};

/// Each class's accuracy (its recall: the fraction of its samples predicted as it), reported as
/// `accuracy/class_<c>` for c in [0, num_classes); NaN for a class with no sample yet. Composer counterpart:
/// `torchmetrics.classification.MulticlassAccuracy(num_classes, average=None)`.
class PerClassAccuracy {
 public:
  /// Accuracy of each of `num_classes` classes.
  /// \throws std::invalid_argument unless `num_classes` is positive.
  explicit PerClassAccuracy(std::int64_t num_classes) : num_classes_(num_classes) {
    if (num_classes < 1)
      throw std::invalid_argument("composer: PerClassAccuracy's num_classes must be positive, got " +
                                  std::to_string(num_classes));
  }

  /// Adds a batch of logits [N, num_classes] and targets.
  void update(const at::Tensor& logits, const at::Tensor& targets) {
    const at::Tensor labels = detail::class_labels(logits, targets, "PerClassAccuracy");
    if (logits.size(1) != num_classes_)
      throw std::invalid_argument("composer: PerClassAccuracy of " + std::to_string(num_classes_) +
                                  " classes got logits of " + std::to_string(logits.size(1)));
    const at::Tensor hits = logits.argmax(1).eq(labels).to(at::kLong);
    if (!samples_.defined()) {
      samples_ = at::zeros({num_classes_}, logits.options().dtype(at::kLong));
      correct_ = at::zeros({num_classes_}, logits.options().dtype(at::kLong));
    }
    if (labels.numel() > 0) {
      const auto [low, high] = at::aminmax(labels);
      if (low.item<std::int64_t>() < 0 || high.item<std::int64_t>() >= num_classes_)
        throw std::invalid_argument("composer: PerClassAccuracy got a class index outside [0, " +
                                    std::to_string(num_classes_) + ")");
    }
    samples_.index_add_(0, labels, at::ones_like(labels));
    correct_.index_add_(0, labels, hits);
  }
  /// `{"accuracy/class_<c>": correct_c / samples_c}` for every class.
  MetricValues compute() const {
    MetricValues values;
    const at::Tensor samples = samples_.defined() ? samples_.cpu() : at::zeros({num_classes_}, at::kLong);
    const at::Tensor correct = correct_.defined() ? correct_.cpu() : at::zeros({num_classes_}, at::kLong);
    for (std::int64_t c = 0; c < num_classes_; ++c)
      values["accuracy/class_" + std::to_string(c)] = detail::ratio_or_nan(
          static_cast<double>(correct[c].item<std::int64_t>()), static_cast<double>(samples[c].item<std::int64_t>()));
    return values;
  }
  /// Forgets every sample.
  void reset() { samples_ = correct_ = at::Tensor(); }
  /// The state to sum over data-parallel ranks: float64 [samples per class..., correct per class...] on the CPU.
  at::Tensor sum_state() const {
    const at::Tensor samples = samples_.defined() ? samples_.cpu() : at::zeros({num_classes_}, at::kLong);
    const at::Tensor correct = correct_.defined() ? correct_.cpu() : at::zeros({num_classes_}, at::kLong);
    return at::cat({samples, correct}).to(at::kDouble);
  }
  /// Takes a state of the form `sum_state()` returns (summed over the ranks).
  void load_sum_state(const at::Tensor& state) {
    const at::Tensor values = detail::checked_sum_state(state, 2 * num_classes_, "PerClassAccuracy").to(at::kLong);
    samples_ = values.narrow(0, 0, num_classes_).clone();
    correct_ = values.narrow(0, num_classes_, num_classes_).clone();
  }

 private:
  std::int64_t num_classes_;
  at::Tensor samples_;
  at::Tensor correct_;
};

/// Mean cross-entropy of the softmax of the logits against the targets (a probability target's full
/// distribution), reported as `cross_entropy`. Composer counterpart: `composer.metrics.CrossEntropy`.
class CrossEntropy {
 public:
  /// Adds a batch of logits [N, C] and targets.
  void update(const at::Tensor& logits, const at::Tensor& targets) {
    const at::Tensor labels = detail::class_labels(logits, targets, "CrossEntropy");
    const at::Tensor log_probs = at::log_softmax(logits.to(at::kFloat), 1);
    const at::Tensor batch_sum = at::isFloatingType(targets.scalar_type())
                                     ? -(targets.to(log_probs.device(), at::kFloat) * log_probs).sum()
                                     : at::nll_loss(log_probs, labels, {}, at::Reduction::Sum);
    const at::Tensor as_double = batch_sum.to(at::kDouble);
    loss_sum_ = loss_sum_.defined() ? loss_sum_ + as_double : as_double;
    count_ += logits.size(0);
  }
  /// `{"cross_entropy": mean loss}`; NaN before any sample.
  MetricValues compute() const {
    return {{"cross_entropy",
             detail::ratio_or_nan(loss_sum_.defined() ? loss_sum_.item<double>() : 0.0, static_cast<double>(count_))}};
  }
  /// Forgets every sample.
  void reset() { loss_sum_ = at::Tensor(), count_ = 0; }
  /// The state to sum over data-parallel ranks: float64 {loss sum, samples} on the CPU.
  at::Tensor sum_state() const {
    return at::tensor(std::vector<double>{loss_sum_.defined() ? loss_sum_.item<double>() : 0.0,
                                          static_cast<double>(count_)},
                      at::kDouble);
  }
  /// Takes a state of the form `sum_state()` returns (summed over the ranks).
  void load_sum_state(const at::Tensor& state) {
    const at::Tensor values = detail::checked_sum_state(state, 2, "CrossEntropy");
    loss_sum_ = values[0].clone();
    count_ = static_cast<std::int64_t>(values[1].item<double>());
  }

 private:
  at::Tensor loss_sum_;
  std::int64_t count_ = 0;
};

/// The Trainer's default evaluation metrics: top-1 `accuracy` and `cross_entropy`. Composer counterpart: the
/// metrics of `ComposerClassifier.get_metrics(is_train=False)` (`MulticlassAccuracy`, `CrossEntropy`).
inline MetricCollection classification_metrics() { return MetricCollection{Accuracy{}, CrossEntropy{}}; }

}  // namespace composer::metrics
