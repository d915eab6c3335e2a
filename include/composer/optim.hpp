#pragma once
/// \file
/// composer::optim — Composer's learning-rate schedules and their time conversion rules.

#include <composer/optim/schedulers.hpp>
