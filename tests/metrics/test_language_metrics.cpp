// Language-model metrics: cross-entropy per token and perplexity against hand-computed values, ignored targets, the
// (N, V, S) and (N * S, V) layouts, summing states over two halves, NaN before any token, and the shapes refused.
#include <torch/torch.h>

#include <composer/metrics.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace language_metrics_test {

namespace metrics = composer::metrics;
using metrics::LanguageCrossEntropy;
using metrics::LanguagePerplexity;

static_assert(metrics::ReducibleMetric<LanguageCrossEntropy> && metrics::ReducibleMetric<LanguagePerplexity>);

double value(const composer::MetricValues& values, const std::string& name) {
  const auto it = values.find(name);
  REQUIRE(it != values.end());
  return it->second;
}

double cross_entropy_of(const LanguageCrossEntropy& metric) { return value(metric.compute(), "language_cross_entropy"); }
double perplexity_of(const LanguagePerplexity& metric) { return value(metric.compute(), "language_perplexity"); }

TEST_CASE("language metrics: uniform logits give ln V and perplexity V") {
  // One sequence of two positions over V = 4: logits (1, 4, 2), all equal.
  const at::Tensor logits = torch::zeros({1, 4, 2});
  const at::Tensor targets = torch::tensor({{3, 0}}, torch::kLong);
  LanguageCrossEntropy ce;
  LanguagePerplexity ppl;
  ce.update(logits, targets);
  ppl.update(logits, targets);
  CHECK(cross_entropy_of(ce) == doctest::Approx(std::log(4.0)).epsilon(1e-6));
  CHECK(perplexity_of(ppl) == doctest::Approx(4.0).epsilon(1e-6));
  CHECK(ce.token_count() == 2.0);
}

TEST_CASE("language metrics: a hand-computed non-uniform case") {
  // V = 3, S = 2. Position 0 scores (ln 1, ln 2, ln 1): p = (1/4, 1/2, 1/4), target 1: loss ln 2.
  // Position 1 scores (0, 0, ln 2):                     p = (1/4, 1/4, 1/2), target 0: loss ln 4.
  // Mean ln(2 * 4) / 2 = ln 8 / 2 = 1.5 ln 2; perplexity sqrt(8).
  const double l2 = std::log(2.0);
  // logits (N=1, V=3, S=2): [0][v][s]
  const at::Tensor logits = torch::tensor({0.0, 0.0, l2, 0.0, 0.0, l2}, torch::kDouble).reshape({1, 3, 2});
  const at::Tensor targets = torch::tensor({{1, 0}}, torch::kLong);
  LanguageCrossEntropy ce;
  ce.update(logits, targets);
  CHECK(cross_entropy_of(ce) == doctest::Approx(1.5 * l2).epsilon(1e-12));
  LanguagePerplexity ppl;
  ppl.update(logits.to(torch::kFloat), targets);
  CHECK(perplexity_of(ppl) == doctest::Approx(std::sqrt(8.0)).epsilon(1e-6));

  // The same two positions given as (N, V) rows against (N) targets.
  LanguageCrossEntropy flat;
  flat.update(torch::tensor({{0.0, l2, 0.0}, {0.0, 0.0, l2}}, torch::kDouble), torch::tensor({1, 0}, torch::kLong));
  CHECK(cross_entropy_of(flat) == doctest::Approx(1.5 * l2).epsilon(1e-12));

  // Accumulates over batches as a mean per token: one more position, uniform over V = 3 (loss ln 3).
  ce.update(torch::zeros({1, 3, 1}, torch::kDouble), torch::tensor({{2}}, torch::kLong));
  CHECK(cross_entropy_of(ce) == doctest::Approx((3.0 * l2 + std::log(3.0)) / 3.0).epsilon(1e-12));
  CHECK(ce.token_count() == 3.0);
}

TEST_CASE("language metrics: targets equal to ignore_index are not counted") {
  torch::manual_seed(0);
  const at::Tensor logits = torch::randn({2, 5, 3});
  const at::Tensor targets = torch::tensor({{1, -100, 4}, {-100, 0, 2}}, torch::kLong);
  // The four counted positions by hand: -log_softmax(logits[n, :, s])[target].
  const at::Tensor log_probs = torch::log_softmax(logits.to(torch::kDouble), 1);
  const double expected = -(log_probs[0][1][0].item<double>() + log_probs[0][4][2].item<double>() +
                            log_probs[1][0][1].item<double>() + log_probs[1][2][2].item<double>()) /
                          4.0;
  LanguageCrossEntropy ce;
  ce.update(logits, targets);
  CHECK(ce.token_count() == 4.0);
  CHECK(cross_entropy_of(ce) == doctest::Approx(expected).epsilon(1e-6));
  LanguagePerplexity ppl;
  ppl.update(logits, targets);
  CHECK(perplexity_of(ppl) == doctest::Approx(std::exp(expected)).epsilon(1e-6));

  // Another ignore_index: -100 is then an invalid target, 7 is skipped.
  LanguageCrossEntropy seven(7);
  CHECK(seven.ignore_index() == 7);
  seven.update(logits, torch::tensor({{1, 7, 4}, {7, 0, 2}}, torch::kLong));
  CHECK(cross_entropy_of(seven) == doctest::Approx(expected).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(seven.update(logits, targets), doctest::Contains("outside [0, 5)"), std::invalid_argument);

  // Every target ignored: still NaN.
  LanguageCrossEntropy none;
  none.update(logits, torch::full({2, 3}, -100, torch::kLong));
  CHECK(std::isnan(cross_entropy_of(none)));
}

TEST_CASE("language metrics: (N, V, S) logits agree with the same positions as (N * S, V) rows") {
  torch::manual_seed(1);
  const at::Tensor logits = torch::randn({3, 7, 4});  // N = 3, V = 7, S = 4
  const at::Tensor targets = torch::randint(0, 7, {3, 4}, torch::kLong);
  LanguageCrossEntropy sequence, rows;
  sequence.update(logits, targets);
  rows.update(logits.permute({0, 2, 1}).reshape({12, 7}), targets.reshape({12}));
  CHECK(sequence.token_count() == 12.0);
  CHECK(cross_entropy_of(sequence) == doctest::Approx(cross_entropy_of(rows)).epsilon(1e-6));
  // And both agree with LibTorch's cross_entropy over the class dimension 1.
  const double reference = torch::nn::functional::cross_entropy(logits, targets).item<double>();
  CHECK(cross_entropy_of(sequence) == doctest::Approx(reference).epsilon(1e-5));
}

TEST_CASE("language metrics: summed states of two halves give the whole") {
  torch::manual_seed(2);
  const at::Tensor logits = torch::randn({4, 6, 5});
  at::Tensor targets = torch::randint(0, 6, {4, 5}, torch::kLong);
  targets[1][3] = -100;
  targets[2][0] = -100;
  LanguageCrossEntropy whole, first, second;
  whole.update(logits, targets);
  first.update(logits.narrow(0, 0, 2), targets.narrow(0, 0, 2));
  second.update(logits.narrow(0, 2, 2), targets.narrow(0, 2, 2));
  const at::Tensor state = first.sum_state();
  CHECK((state.scalar_type() == torch::kDouble));
  CHECK(state.device().is_cpu());
  CHECK(state.sizes().vec() == std::vector<std::int64_t>{2});

  // Equal up to float32 rounding: each update sums its batch's losses in float32.
  LanguageCrossEntropy reduced;
  reduced.load_sum_state(first.sum_state() + second.sum_state());
  CHECK(reduced.token_count() == 18.0);
  CHECK(cross_entropy_of(reduced) == doctest::Approx(cross_entropy_of(whole)).epsilon(1e-6));
  // Round trip: a metric loaded with another's state reports the same.
  LanguageCrossEntropy copy;
  copy.load_sum_state(whole.sum_state());
  CHECK(cross_entropy_of(copy) == doctest::Approx(cross_entropy_of(whole)).epsilon(1e-12));

  LanguagePerplexity ppl_whole, ppl_first, ppl_second, ppl_reduced;
  ppl_whole.update(logits, targets);
  ppl_first.update(logits.narrow(0, 0, 2), targets.narrow(0, 0, 2));
  ppl_second.update(logits.narrow(0, 2, 2), targets.narrow(0, 2, 2));
  ppl_reduced.load_sum_state(ppl_first.sum_state() + ppl_second.sum_state());
  CHECK(perplexity_of(ppl_reduced) == doctest::Approx(perplexity_of(ppl_whole)).epsilon(1e-6));
  CHECK(perplexity_of(ppl_whole) == doctest::Approx(std::exp(cross_entropy_of(whole))).epsilon(1e-6));

  // Through the type-erased collection too.
  auto collection = metrics::language_model_metrics();
  auto half_a = metrics::language_model_metrics(), half_b = metrics::language_model_metrics();
  collection.update(logits, targets);
  half_a.update(logits.narrow(0, 0, 2), targets.narrow(0, 0, 2));
  half_b.update(logits.narrow(0, 2, 2), targets.narrow(0, 2, 2));
  CHECK(collection.reducible());
  auto combined = metrics::language_model_metrics();
  combined.load_sum_state(half_a.sum_state() + half_b.sum_state());
  CHECK(value(combined.compute(), "language_cross_entropy") ==
        doctest::Approx(value(collection.compute(), "language_cross_entropy")).epsilon(1e-6));
  CHECK(value(combined.compute(), "language_perplexity") ==
        doctest::Approx(value(collection.compute(), "language_perplexity")).epsilon(1e-6));

  CHECK_THROWS_WITH_AS(reduced.load_sum_state(torch::zeros({3}, torch::kDouble)), doctest::Contains("2 values"),
                       std::invalid_argument);
}

TEST_CASE("language metrics: NaN before any token, and reset forgets") {
  LanguageCrossEntropy ce;
  LanguagePerplexity ppl;
  CHECK(std::isnan(cross_entropy_of(ce)));
  CHECK(std::isnan(perplexity_of(ppl)));
  CHECK(ce.sum_state().sizes().vec() == std::vector<std::int64_t>{2});
  CHECK(ce.sum_state().sum().item<double>() == 0.0);
  const auto names = metrics::language_model_metrics().value_names();
  CHECK(names == std::vector<std::string>{"language_cross_entropy", "language_perplexity"});

  ce.update(torch::zeros({1, 4, 2}), torch::tensor({{1, 2}}, torch::kLong));
  ppl.update(torch::zeros({1, 4, 2}), torch::tensor({{1, 2}}, torch::kLong));
  CHECK_FALSE(std::isnan(cross_entropy_of(ce)));
  ce.reset();
  ppl.reset();
  CHECK(std::isnan(cross_entropy_of(ce)));
  CHECK(std::isnan(perplexity_of(ppl)));
}

TEST_CASE("language metrics: shape mismatches name both shapes") {
  LanguageCrossEntropy ce;
  LanguagePerplexity ppl;
  const at::Tensor logits = torch::zeros({2, 4, 3});
  CHECK_THROWS_WITH_AS(ce.update(logits, torch::zeros({2, 5}, torch::kLong)),
                       doctest::Contains("logits [2, 4, 3] and targets [2, 5]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ce.update(logits, torch::zeros({3, 3}, torch::kLong)),
                       doctest::Contains("logits [2, 4, 3] and targets [3, 3]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ce.update(logits, torch::zeros({2}, torch::kLong)),
                       doctest::Contains("logits [2, 4, 3] and targets [2]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ce.update(torch::zeros({6, 4}), torch::zeros({2, 3}, torch::kLong)),
                       doctest::Contains("logits [6, 4] and targets [2, 3]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ppl.update(logits, torch::zeros({2, 5}, torch::kLong)),
                       doctest::Contains("composer: LanguagePerplexity"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ce.update(logits, torch::zeros({2, 3})), doctest::Contains("integer token targets"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ce.update(logits, torch::full({2, 3}, 4, torch::kLong)), doctest::Contains("outside [0, 4)"),
                       std::invalid_argument);
  // Nothing was counted by the refused batches.
  CHECK(std::isnan(cross_entropy_of(ce)));
}

}  // namespace language_metrics_test
