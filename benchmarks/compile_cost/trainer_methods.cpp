// Compile-cost: trainer_empty.cpp's job with eight methods that compose (batch, loss, optimizer and
// weight-averaging methods), each from its own header unless COMPOSER_COMPILE_COST_HEADER is the umbrella.
#include <composer/algorithms/cutout.hpp>
#include <composer/algorithms/ema.hpp>
#include <composer/algorithms/gradient_clipping.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/layer_freezing.hpp>
#include <composer/algorithms/mixup.hpp>
#include <composer/algorithms/progressive_resizing.hpp>
#include <composer/algorithms/selective_backprop.hpp>

#define COMPOSER_COMPILE_COST_METHODS                                                                    \
  composer::algorithms::LabelSmoothing, composer::algorithms::MixUp, composer::algorithms::CutOut,      \
      composer::algorithms::ProgressiveResizing, composer::algorithms::SelectiveBackprop,               \
      composer::algorithms::GradientClipping, composer::algorithms::EMA, composer::algorithms::LayerFreezing
#define COMPOSER_COMPILE_COST_POLICY_OBJECTS                                                               \
  , composer::algorithms::LabelSmoothing(0.1), composer::algorithms::MixUp(0.2), composer::algorithms::CutOut(1), \
      composer::algorithms::ProgressiveResizing(), composer::algorithms::SelectiveBackprop(0.2),                 \
      composer::algorithms::GradientClipping("norm", 1.0), composer::algorithms::EMA(),                          \
      composer::algorithms::LayerFreezing(0.5)
#include "trainer_empty.cpp"
