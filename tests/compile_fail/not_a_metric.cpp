// A type without the metric protocol (here, compute() returns a bare double) given as a metric: the compiler must
// say that it is not a metric and what a metric needs.
#include <composer/metrics/metric.hpp>

struct HalfAMetric {
  void update(const at::Tensor&, const at::Tensor&) {}
  double compute() const { return 0.0; }
  void reset() {}
};

int main() {
  composer::metrics::MetricCollection collection{HalfAMetric{}};
  return collection.empty() ? 1 : 0;
}
