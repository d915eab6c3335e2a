// Metrics: top-k, per-class accuracy and cross-entropy against hand-computed values, accumulation over batches,
// probability targets, reset, the bad shapes each refuses, and the type-erased metric and collection.
#include <torch/torch.h>

#include <composer/metrics.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace metrics = composer::metrics;
using composer::MetricValues;

namespace metrics_test {

// Four samples of three classes. Arg-max predictions 0, 1, 2, 0 against targets 0, 2, 2, 1: samples 0 and 2 are
// right (top-1 accuracy 1/2); every target is among its row's two largest logits (top-2 accuracy 1).
at::Tensor four_logits() {
  return torch::tensor({{2.0, 1.0, 0.0}, {0.0, 3.0, 1.0}, {1.0, 0.0, 5.0}, {0.5, 0.2, 0.1}});
}
at::Tensor four_targets() { return torch::tensor({0, 2, 2, 1}, torch::kLong); }

// A user's own metric: the mean absolute difference between the first logit and the target.
struct MeanFirstLogitError {
  double sum = 0.0;
  std::int64_t count = 0;
  void update(const at::Tensor& outputs, const at::Tensor& targets) {
    sum += (outputs.select(1, 0) - targets.to(torch::kFloat)).abs().sum().item<double>();
    count += outputs.size(0);
  }
  MetricValues compute() const { return {{"first_logit_error", count ? sum / static_cast<double>(count) : NAN}}; }
  void reset() { sum = 0.0, count = 0; }
};
static_assert(metrics::Metric<MeanFirstLogitError>);
static_assert(metrics::Metric<metrics::Accuracy> && metrics::Metric<metrics::PerClassAccuracy> &&
              metrics::Metric<metrics::CrossEntropy> && metrics::Metric<metrics::AnyMetric>);
static_assert(!metrics::Metric<int>);

}  // namespace metrics_test

using namespace metrics_test;

TEST_CASE("Accuracy counts the samples whose class is among the top k logits, over every batch since reset") {
  metrics::Accuracy top1;
  metrics::Accuracy top2(2);
  CHECK(std::isnan(top1.compute().at("accuracy")));
  top1.update(four_logits(), four_targets());
  top2.update(four_logits(), four_targets());
  CHECK(top1.compute().at("accuracy") == doctest::Approx(0.5));
  CHECK(top2.compute().at("top2_accuracy") == doctest::Approx(1.0));
  CHECK(top2.compute().size() == 1);
  // A second batch of one right sample: 3 right of 5.
  top1.update(torch::tensor({{0.0, 0.0, 1.0}}), torch::tensor({2}, torch::kLong));
  CHECK(top1.compute().at("accuracy") == doctest::Approx(0.6));
  // Probability targets (mixed labels) count as their arg-max class: rows 0 and 1 are right.
  metrics::Accuracy mixed;
  mixed.update(four_logits().slice(0, 0, 2), torch::tensor({{0.7, 0.3, 0.0}, {0.1, 0.6, 0.3}}));
  CHECK(mixed.compute().at("accuracy") == doctest::Approx(1.0));
  top1.reset();
  CHECK(std::isnan(top1.compute().at("accuracy")));
  top1.update(four_logits(), four_targets().to(torch::kInt));  // any integer type of class index
  CHECK(top1.compute().at("accuracy") == doctest::Approx(0.5));
}

TEST_CASE("Accuracy refuses a k out of range and shapes that are not logits against targets") {
  CHECK_THROWS_WITH_AS(metrics::Accuracy(0), doctest::Contains("top_k must be positive"), std::invalid_argument);
  metrics::Accuracy top4(4);
  CHECK_THROWS_WITH_AS(top4.update(four_logits(), four_targets()), doctest::Contains("top_k 4 exceeds the 3 classes"),
                       std::invalid_argument);
  metrics::Accuracy accuracy;
  CHECK_THROWS_WITH_AS(accuracy.update(torch::zeros({4}), four_targets()), doctest::Contains("[N, C]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(accuracy.update(four_logits(), torch::tensor({0, 1}, torch::kLong)),
                       doctest::Contains("4 outputs but 2 targets"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(accuracy.update(four_logits(), torch::zeros({4})), doctest::Contains("probability targets"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(accuracy.update(four_logits(), torch::zeros({4, 2}, torch::kLong)),
                       doctest::Contains("class-index targets of shape [N]"), std::invalid_argument);
  CHECK(std::isnan(accuracy.compute().at("accuracy")));  // nothing was counted by the refused batches
}

TEST_CASE("PerClassAccuracy reports each class's share of its samples predicted right, NaN for an unseen class") {
  metrics::PerClassAccuracy per_class(4);
  // Four classes, the fourth never a target: the logits get a fourth column that never wins.
  per_class.update(torch::cat({four_logits(), torch::full({4, 1}, -9.0)}, 1), four_targets());
  const MetricValues values = per_class.compute();
  CHECK(values.size() == 4);
  CHECK(values.at("accuracy/class_0") == doctest::Approx(1.0));  // sample 0, right
  CHECK(values.at("accuracy/class_1") == doctest::Approx(0.0));  // sample 3, predicted 0
  CHECK(values.at("accuracy/class_2") == doctest::Approx(0.5));  // samples 1 (wrong) and 2 (right)
  CHECK(std::isnan(values.at("accuracy/class_3")));
  per_class.reset();
  CHECK(std::isnan(per_class.compute().at("accuracy/class_0")));
  CHECK_THROWS_WITH_AS(per_class.update(four_logits(), four_targets()),
                       doctest::Contains("PerClassAccuracy of 4 classes got logits of 3"), std::invalid_argument);
  metrics::PerClassAccuracy three(3);
  CHECK_THROWS_WITH_AS(three.update(four_logits(), torch::tensor({0, 1, 2, 3}, torch::kLong)),
                       doctest::Contains("class index outside [0, 3)"), std::invalid_argument);
  CHECK_THROWS_AS(metrics::PerClassAccuracy(0), std::invalid_argument);
}

TEST_CASE("CrossEntropy is the mean negative log-likelihood of the softmax, for class indices and probabilities") {
  metrics::CrossEntropy cross_entropy;
  CHECK(std::isnan(cross_entropy.compute().at("cross_entropy")));
  // Logits (0, 0), class 0: -ln(1/2). Logits (ln 3, 0), class 1: -ln(1/4).
  cross_entropy.update(torch::tensor({{0.0, 0.0}}), torch::tensor({0}, torch::kLong));
  cross_entropy.update(torch::tensor({{std::log(3.0), 0.0}}), torch::tensor({1}, torch::kLong));
  CHECK(cross_entropy.compute().at("cross_entropy") == doctest::Approx((std::log(2.0) + std::log(4.0)) / 2));
  // Target (1/2, 1/2) against softmax (3/4, 1/4): -(ln(3/4) + ln(1/4)) / 2.
  metrics::CrossEntropy soft;
  soft.update(torch::tensor({{std::log(3.0), 0.0}}), torch::tensor({{0.5, 0.5}}));
  CHECK(soft.compute().at("cross_entropy") == doctest::Approx(-(std::log(0.75) + std::log(0.25)) / 2));
}

TEST_CASE("a MetricCollection merges its metrics' values and refuses two values of one name") {
  metrics::MetricCollection collection{metrics::Accuracy{}, metrics::Accuracy(2), metrics::CrossEntropy{},
                                       MeanFirstLogitError{}};
  CHECK(collection.size() == 4);
  CHECK(collection.value_names() ==
        std::vector<std::string>{"accuracy", "cross_entropy", "first_logit_error", "top2_accuracy"});
  collection.update(four_logits(), four_targets());
  const MetricValues values = collection.compute();
  CHECK(values.at("accuracy") == doctest::Approx(0.5));
  CHECK(values.at("top2_accuracy") == doctest::Approx(1.0));
  // |2 - 0| + |0 - 2| + |1 - 2| + |0.5 - 1| over 4 samples.
  CHECK(values.at("first_logit_error") == doctest::Approx(5.5 / 4));
  CHECK(values.at("cross_entropy") > 0.0);
  // value_names does not disturb the accumulated values.
  CHECK(collection.compute().at("accuracy") == doctest::Approx(0.5));

  metrics::MetricCollection twice{metrics::Accuracy{}, metrics::Accuracy(1)};
  CHECK_THROWS_WITH_AS(twice.compute(), doctest::Contains("value named 'accuracy'"), std::logic_error);
  CHECK(metrics::classification_metrics().value_names() == std::vector<std::string>{"accuracy", "cross_entropy"});
}

TEST_CASE("copying an AnyMetric copies its accumulated state; the copies then count apart") {
  metrics::AnyMetric original = metrics::Accuracy{};
  original.update(four_logits(), four_targets());
  metrics::AnyMetric copy = original;
  CHECK(copy.compute().at("accuracy") == doctest::Approx(0.5));
  copy.update(torch::tensor({{0.0, 0.0, 1.0}}), torch::tensor({2}, torch::kLong));
  CHECK(copy.compute().at("accuracy") == doctest::Approx(0.6));
  CHECK(original.compute().at("accuracy") == doctest::Approx(0.5));
  original = copy;
  CHECK(original.compute().at("accuracy") == doctest::Approx(0.6));
  copy.reset();
  CHECK(original.compute().at("accuracy") == doctest::Approx(0.6));
  CHECK(std::isnan(copy.compute().at("accuracy")));
}
