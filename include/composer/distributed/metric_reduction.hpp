#pragma once
/// \file
/// Metrics over the whole data set of a data-parallel run: each rank's metric states summed over the ranks
/// before the values are computed. Composer counterpart: torchmetrics' synchronisation of metric states in
/// `compute()` under `torch.distributed`.

#include <stdexcept>
#include <string>

#include <composer/core/state.hpp>
#include <composer/distributed/process_group.hpp>
#include <composer/metrics/metric.hpp>

namespace composer::dist {

/// Refuses `metrics` that cannot be summed over the `world_size` ranks of a run; `what` names them in the error.
/// \throws std::invalid_argument when a metric is no `metrics::ReducibleMetric`.
inline void require_reducible(const metrics::MetricCollection& metrics, int world_size, const std::string& what) {
  if (!metrics.reducible())
    throw std::invalid_argument("composer: the " + what + " metrics cannot be reduced over " +
                                std::to_string(world_size) +
                                " ranks: each metric needs sum_state() and load_sum_state() (metrics::ReducibleMetric)");
}

/// The values of `metrics` over every rank's samples: with a group, a copy of `metrics` takes the sum over the
/// ranks of their states and computes; without one (a single process), `metrics.compute()`. The metrics
/// themselves keep their own rank's state, so that they go on accumulating.
/// \throws std::invalid_argument when a metric cannot be reduced (it is no `metrics::ReducibleMetric`).
inline MetricValues compute_over_ranks(const metrics::MetricCollection& metrics, const ProcessGroup* group,
                                       const std::string& what) {
  if (!group) return metrics.compute();
  require_reducible(metrics, group->world_size(), what);
  metrics::MetricCollection reduced = metrics;
  const at::Tensor state = reduced.sum_state().contiguous();
  group->all_reduce_sum(state, "all-reduce of the " + what + " metrics");
  reduced.load_sum_state(state);
  return reduced.compute();
}

}  // namespace composer::dist
