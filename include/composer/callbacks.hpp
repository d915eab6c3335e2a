#pragma once
/// \file
/// Composer's built-in callbacks (Composer counterpart: `composer.callbacks`), as policies with
/// `role == composer::Role::callback`: `LRMonitor`, `SpeedMonitor`, `EarlyStopper`, `ThresholdStopper` and
/// `MemoryMonitor`.

#include <composer/callbacks/early_stopper.hpp>
#include <composer/callbacks/lr_monitor.hpp>
#include <composer/callbacks/memory_monitor.hpp>
#include <composer/callbacks/monitored_metric.hpp>
#include <composer/callbacks/speed_monitor.hpp>
#include <composer/callbacks/threshold_stopper.hpp>
