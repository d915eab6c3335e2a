#pragma once
/// \file
/// Metrics (Composer counterpart: the torchmetrics its models report): the metric protocol, a metric of any type
/// and a collection of them, and the classification metrics (top-k and per-class accuracy, cross-entropy).

#include <composer/metrics/classification.hpp>
#include <composer/metrics/metric.hpp>
