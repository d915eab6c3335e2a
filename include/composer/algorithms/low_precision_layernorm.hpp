#pragma once
/// \file
/// composer::algorithms::LowPrecisionLayerNorm — LayerNorms that normalise in the autocast low-precision type.
/// Defined beside its sibling in `low_precision_norm.hpp`, over the template both share.

#include <composer/algorithms/low_precision_norm.hpp>
