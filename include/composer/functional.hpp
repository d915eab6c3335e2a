#pragma once
/// \file
/// The functional form of Composer's per-batch methods (Composer counterpart: `composer.functional`):
/// mixup_batch, cutmix_batch, cutout_batch, colout_batch, smooth_labels, resize_batch,
/// should_selective_backprop and select_using_loss, plus the helpers that draw or take their random choices, and
/// the model surgeries apply_blurpool, apply_channels_last, apply_squeeze_excite and apply_stochastic_depth.

#include <composer/functional/alibi.hpp>
#include <composer/functional/alibi_bias.hpp>
#include <composer/functional/augment_ops.hpp>
#include <composer/functional/augmix.hpp>
#include <composer/functional/blurpool.hpp>
#include <composer/functional/channels_last.hpp>
#include <composer/functional/colout.hpp>
#include <composer/functional/common.hpp>
#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/ema.hpp>
#include <composer/functional/gradient_clipping.hpp>
#include <composer/functional/label_smoothing.hpp>
#include <composer/functional/layer_freezing.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/functional/factorize.hpp>
#include <composer/functional/gated_linear_units.hpp>
#include <composer/functional/ghost_batchnorm.hpp>
#include <composer/functional/gyro_dropout.hpp>
#include <composer/functional/low_precision_groupnorm.hpp>
#include <composer/functional/low_precision_layernorm.hpp>
#include <composer/functional/weight_standardization.hpp>
#include <composer/functional/randaugment.hpp>
#include <composer/functional/resize.hpp>
#include <composer/functional/selective_backprop.hpp>
#include <composer/functional/seq_length_warmup.hpp>
#include <composer/functional/squeeze_excite.hpp>
#include <composer/functional/stochastic_depth.hpp>
