#pragma once
/// \file
/// Every algorithm of the methods library, as policies for `Trainer<...>` / `Engine<...>`.

#include <composer/algorithms/augmix.hpp>
#include <composer/algorithms/colout.hpp>
#include <composer/algorithms/cutmix.hpp>
#include <composer/algorithms/cutout.hpp>
#include <composer/algorithms/ema.hpp>
#include <composer/algorithms/gradient_clipping.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/layer_freezing.hpp>
#include <composer/algorithms/mixup.hpp>
#include <composer/algorithms/normalize_inputs.hpp>
#include <composer/algorithms/progressive_resizing.hpp>
#include <composer/algorithms/randaugment.hpp>
#include <composer/algorithms/sam.hpp>
#include <composer/algorithms/selective_backprop.hpp>
#include <composer/algorithms/swa.hpp>
