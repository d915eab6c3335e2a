#pragma once
/// \file
/// Evaluation metrics (Composer counterpart: the torchmetrics its models report): classification accuracy
/// and cross entropy.

#include <composer/metrics/classification.hpp>
