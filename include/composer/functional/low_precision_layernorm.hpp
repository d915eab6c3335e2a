#pragma once
/// \file
/// `apply_low_precision_layernorm`: LayerNorms replaced by `modules::LPLayerNorm`, which normalise in the autocast
/// low-precision type. Composer counterpart: `composer.functional.apply_low_precision_layernorm`.
/// Defined beside its sibling in `low_precision_norm.hpp`, over the template both share.

#include <composer/functional/low_precision_norm.hpp>
