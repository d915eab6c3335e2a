#pragma once
/// \file
/// Everything composer-cpp offers: `#include <composer/composer.hpp>` and link `composer::composer`.

#include <composer/core.hpp>
#include <composer/core/batch.hpp>
#include <composer/core/model.hpp>
#include <composer/core/precision.hpp>
#include <composer/core/state.hpp>
#include <composer/core/training_engine.hpp>
