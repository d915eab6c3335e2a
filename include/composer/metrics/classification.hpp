#pragma once
/// \file
/// composer::metrics::ClassificationMetrics — top-1 accuracy and mean cross-entropy accumulated over batches.

#include <cstdint>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>

#include <composer/core/state.hpp>

namespace composer::metrics {

/// Accumulates top-1 accuracy and mean cross-entropy of logits against class-index or probability targets
/// (probability targets count as correct when their arg-max is predicted). Composer counterpart: the
/// `MulticlassAccuracy` and `CrossEntropy` metrics of a classification `ComposerModel`.
class ClassificationMetrics {
 public:
  /// Adds a batch of logits [N, C] and targets [N] (indices) or [N, C] (probabilities).
  void update(const at::Tensor& logits, const at::Tensor& targets) {
    if (logits.dim() != 2)
      throw std::invalid_argument("composer: classification metrics need logits of shape [N, C], got " +
                                  std::to_string(logits.dim()) + " dimension(s)");
    if (targets.size(0) != logits.size(0))
      throw std::invalid_argument("composer: classification metrics got " + std::to_string(logits.size(0)) +
                                  " outputs but " + std::to_string(targets.size(0)) + " targets");
    const at::Tensor labels = at::isFloatingType(targets.scalar_type()) ? targets.argmax(1) : targets;
    const at::Tensor log_probs = at::log_softmax(logits.to(at::kFloat), 1);
    const at::Tensor loss_sum = at::isFloatingType(targets.scalar_type())
                                    ? -(targets.to(at::kFloat) * log_probs).sum()
                                    : at::nll_loss(log_probs, labels, {}, at::Reduction::Sum);
    correct_ += logits.argmax(1).eq(labels.to(logits.device())).sum().item<std::int64_t>();
    loss_sum_ += loss_sum.item<double>();
    count_ += logits.size(0);
  }
  /// `{"accuracy": a, "cross_entropy": l}` over every sample since the last reset; NaN before any sample.
  MetricValues compute() const {
    const double n = static_cast<double>(count_);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {{"accuracy", count_ ? static_cast<double>(correct_) / n : nan},
            {"cross_entropy", count_ ? loss_sum_ / n : nan}};
  }
  /// Samples seen since the last reset.
  std::int64_t count() const noexcept { return count_; }
  /// Forgets every sample.
  void reset() noexcept { correct_ = count_ = 0, loss_sum_ = 0.0; }

 private:
  std::int64_t correct_ = 0;
  std::int64_t count_ = 0;
  double loss_sum_ = 0.0;
};

}  // namespace composer::metrics
