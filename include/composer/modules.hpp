#pragma once
/// \file
/// The layers model surgery puts into a model, one header per method that adds them (Composer counterpart: the
/// modules defined beside each algorithm, e.g. `composer.algorithms.blurpool.blurpool_layers`).

#include <composer/modules/alibi_attention.hpp>
#include <composer/modules/blurpool.hpp>
#include <composer/modules/conv_options.hpp>
#include <composer/modules/factorize.hpp>
#include <composer/modules/gated_linear_units.hpp>
#include <composer/modules/ghost_batchnorm.hpp>
#include <composer/modules/gyro_dropout.hpp>
#include <composer/modules/low_precision_norm.hpp>
#include <composer/modules/squeeze_excite.hpp>
#include <composer/modules/stochastic_depth.hpp>
#include <composer/modules/weight_standardization.hpp>
