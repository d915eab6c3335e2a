#pragma once
/// \file
/// Metrics (Composer counterpart: the torchmetrics its models report): the metric protocol, a metric of any type
/// and a collection of them, the classification metrics (top-k and per-class accuracy, cross-entropy) and the
/// language-model metrics (cross-entropy per token, perplexity).

#include <composer/metrics/classification.hpp>
#include <composer/metrics/language.hpp>
#include <composer/metrics/metric.hpp>
