#pragma once
/// \file
/// Everything composer-cpp offers: `#include <composer/composer.hpp>` and link `composer::composer`.
///
/// Each folder `composer/X/` has its umbrella `composer/X.hpp` beside it, and this header includes them all.
/// A translation unit that needs only a part pays less to compile by including that part: `composer/trainer.hpp`
/// and the headers of the methods it uses (`composer/algorithms/mixup.hpp`, ...).

#include <composer/core.hpp>
#include <composer/io.hpp>
#include <composer/data.hpp>
#include <composer/metrics.hpp>
#include <composer/loggers.hpp>
#include <composer/callbacks.hpp>
#include <composer/optim.hpp>
#include <composer/distributed.hpp>
#include <composer/trainer.hpp>
#include <composer/surgery.hpp>
#include <composer/modules.hpp>
#include <composer/models.hpp>
#include <composer/kernels.hpp>
#include <composer/functional.hpp>
#include <composer/algorithms.hpp>
