#pragma once
/// \file
/// Data-parallel training on c10d: process groups from the launcher's variables, gradient synchronisation and
/// metrics reduced over the ranks (the Trainer uses them all when `WORLD_SIZE` is set; `composer_launch` starts
/// the ranks). Composer counterpart: `composer.utils.dist` and Composer's DDP set-up.

#include <composer/distributed/gradient_sync.hpp>
#include <composer/distributed/metric_reduction.hpp>
#include <composer/distributed/process_group.hpp>
