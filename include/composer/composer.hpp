#pragma once
/// \file
/// Everything composer-cpp offers: `#include <composer/composer.hpp>` and link `composer::composer`.

#include <composer/core.hpp>
#include <composer/core/batch.hpp>
#include <composer/core/model.hpp>
#include <composer/core/precision.hpp>
#include <composer/core/state.hpp>
#include <composer/core/training_engine.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/data/fashion_mnist.hpp>
#include <composer/data/idx.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/metrics/classification.hpp>
#include <composer/trainer/checkpoint.hpp>
#include <composer/trainer/precision_context.hpp>
#include <composer/trainer/trainer.hpp>
#include <composer/trainer/trainer_options.hpp>
#include <composer/loggers/loggers.hpp>
#include <composer/optim/schedulers.hpp>
#include <composer/algorithms.hpp>
#include <composer/functional/functional.hpp>
#include <composer/models/resnet.hpp>
#include <composer/models/simple_cnn.hpp>
#include <composer/surgery/surgery.hpp>
