#pragma once
/// \file
/// Language-model metrics: mean cross-entropy per target token and its exponential, the perplexity, of logits
/// (N, V, S) against token targets (N, S) (or (N, V) against (N)), tokens equal to `ignore_index` not counted,
/// accumulated on the logits' device.

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>
#include <composer/core/state.hpp>
#include <composer/metrics/classification.hpp>
#include <composer/metrics/metric.hpp>

namespace composer::metrics {

/// Mean cross-entropy per target token of the softmax over the vocabulary of the logits, reported as
/// `language_cross_entropy`: logits (N, V, S) — the class dimension second, as `at::cross_entropy` takes
/// per-position classes — against int64 targets (N, S), or logits (N, V) against targets (N). Targets equal to
/// `ignore_index` (-100 by default, as in Composer and Hugging Face) count neither in the sum nor in the number of
/// tokens. Composer counterpart: `composer.metrics.nlp.LanguageCrossEntropy`.
class LanguageCrossEntropy {
 public:
  /// Ignores targets equal to -100.
  LanguageCrossEntropy() = default;
  /// Ignores targets equal to `ignore_index`. Counterpart: `LanguageCrossEntropy(ignore_index=...)`.
  explicit LanguageCrossEntropy(std::int64_t ignore_index) : ignore_index_(ignore_index) {}

  /// Adds a batch of logits (N, V, S) and targets (N, S), or logits (N, V) and targets (N).
  /// \throws std::invalid_argument for other shapes (naming both), floating-point targets, or a target that is
  /// neither `ignore_index` nor in [0, V).
  void update(const at::Tensor& logits, const at::Tensor& targets) {
    if (!logits.defined() || !targets.defined())
      throw std::invalid_argument("composer: " + metric_name() + " got an undefined " +
                                  (logits.defined() ? "targets" : "logits") + " tensor");
    const bool sequence = logits.dim() == 3 && targets.dim() == 2 && logits.size(0) == targets.size(0) &&
                          logits.size(2) == targets.size(1);
    const bool flat = logits.dim() == 2 && targets.dim() == 1 && logits.size(0) == targets.size(0);
    if (!sequence && !flat)
      throw std::invalid_argument("composer: " + metric_name() +
                                  " needs logits (N, V, S) with targets (N, S), or logits (N, V) with targets (N); got "
                                  "logits " + checks::shape_of(logits) + " and targets " +
                                  checks::shape_of(targets));
    if (!at::isIntegralType(targets.scalar_type(), /*includeBool=*/false))
      throw std::invalid_argument("composer: " + metric_name() + " needs integer token targets, got " +
                                  std::string(c10::toString(targets.scalar_type())));
    const std::int64_t vocab = logits.size(1);
    // (N, V, S) -> (N * S, V): one row of class scores per target token.
    const at::Tensor rows = sequence ? logits.transpose(1, 2).reshape({-1, vocab}) : logits;
    const at::Tensor labels = targets.to(logits.device(), at::kLong).reshape({-1});
    const at::Tensor counted = labels.ne(ignore_index_);
    if (labels.numel() > 0 && (counted & (labels.lt(0) | labels.ge(vocab))).any().item<bool>())
      throw std::invalid_argument("composer: " + metric_name() + " got a target outside [0, " + std::to_string(vocab) +
                                  ") that is not the ignore_index " + std::to_string(ignore_index_));
    const at::Tensor log_probs =
        at::log_softmax(rows.scalar_type() == at::kDouble ? rows : rows.to(at::kFloat), 1);
    const at::Tensor batch_sum =
        at::nll_loss(log_probs, labels, {}, at::Reduction::Sum, ignore_index_).to(at::kDouble);
    const at::Tensor batch_count = counted.sum().to(at::kDouble);
    loss_sum_ = loss_sum_.defined() ? loss_sum_ + batch_sum : batch_sum;
    count_ = count_.defined() ? count_ + batch_count : batch_count;
  }
  /// `{"language_cross_entropy": loss sum / counted tokens}`; NaN before any counted token.
  MetricValues compute() const { return {{"language_cross_entropy", mean()}}; }
  /// Forgets every token.
  void reset() { loss_sum_ = count_ = at::Tensor(); }
  /// The state to sum over data-parallel ranks: float64 {loss sum, counted tokens} on the CPU. Counterpart: the
  /// `sum_loss` and `total_items` states.
  at::Tensor sum_state() const { return at::tensor(std::vector<double>{loss_sum(), token_count()}, at::kDouble); }
  /// Takes a state of the form `sum_state()` returns (summed over the ranks).
  void load_sum_state(const at::Tensor& state) {
    const at::Tensor values = detail::checked_sum_state(state, 2, name_);
    loss_sum_ = values[0].clone();
    count_ = values[1].clone();
  }

  /// The target value that is not counted.
  std::int64_t ignore_index() const noexcept { return ignore_index_; }
  /// The mean cross-entropy per counted token (NaN before any).
  double mean() const { return detail::ratio_or_nan(loss_sum(), token_count()); }
  /// The number of counted target tokens so far.
  double token_count() const { return count_.defined() ? count_.item<double>() : 0.0; }
  /// The summed cross-entropy (nats) of the counted tokens so far.
  double loss_sum() const { return loss_sum_.defined() ? loss_sum_.item<double>() : 0.0; }

 private:
  friend class LanguagePerplexity;
  LanguageCrossEntropy(std::int64_t ignore_index, const char* name) : ignore_index_(ignore_index), name_(name) {}
  std::string metric_name() const { return name_; }

  std::int64_t ignore_index_ = -100;
  const char* name_ = "LanguageCrossEntropy";  // the metric named in error messages
  at::Tensor loss_sum_;  // float64 scalar on the logits' device, so that an update does not wait for it
  at::Tensor count_;     // float64 scalar on the logits' device
};

/// The perplexity exp(mean cross-entropy per target token) of the same inputs as `LanguageCrossEntropy`, reported as
/// `language_perplexity`. Composer counterpart: `composer.metrics.nlp.LanguagePerplexity`.
class LanguagePerplexity {
 public:
  /// Ignores targets equal to -100.
  LanguagePerplexity() = default;
  /// Ignores targets equal to `ignore_index`. Counterpart: `LanguagePerplexity(ignore_index=...)`.
  explicit LanguagePerplexity(std::int64_t ignore_index) : cross_entropy_(ignore_index, "LanguagePerplexity") {}

  /// Adds a batch, as `LanguageCrossEntropy::update`. \throws std::invalid_argument as it does.
  void update(const at::Tensor& logits, const at::Tensor& targets) { cross_entropy_.update(logits, targets); }
  /// `{"language_perplexity": exp(mean cross-entropy)}`; NaN before any counted token.
  MetricValues compute() const { return {{"language_perplexity", std::exp(cross_entropy_.mean())}}; }
  /// Forgets every token.
  void reset() { cross_entropy_.reset(); }
  /// The state to sum over data-parallel ranks: float64 {loss sum, counted tokens} on the CPU.
  at::Tensor sum_state() const { return cross_entropy_.sum_state(); }
  /// Takes a state of the form `sum_state()` returns (summed over the ranks).
  void load_sum_state(const at::Tensor& state) { cross_entropy_.load_sum_state(state); }
  /// The target value that is not counted.
  std::int64_t ignore_index() const noexcept { return cross_entropy_.ignore_index(); }

 private:
  LanguageCrossEntropy cross_entropy_{-100, "LanguagePerplexity"};
};

/// A language model's evaluation metrics: `language_cross_entropy` and `language_perplexity`, ignoring targets
/// equal to `ignore_index`. Composer counterpart: the metrics of `HuggingFaceModel` for causal language modelling
/// (`LanguageCrossEntropy`, `LanguagePerplexity`).
inline MetricCollection language_model_metrics(std::int64_t ignore_index = -100) {
  return MetricCollection{LanguageCrossEntropy{ignore_index}, LanguagePerplexity{ignore_index}};
}

}  // namespace composer::metrics
