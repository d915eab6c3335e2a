#pragma once
/// \file
/// Intervals in training time: whether the last step of the clock reached one.

#include <cstdint>

#include <composer/core/time.hpp>
#include <composer/core/timestamp.hpp>

namespace composer {

/// Whether going from `before` to `now` crossed a multiple of `interval`, counted in `unit` only (an interval in
/// another unit, or not positive, never fires). Composer counterpart: the event-based `save_interval` and
/// `eval_interval` checks of `composer.utils.create_interval_scheduler`.
inline bool interval_crossed(const Time& interval, TimeUnit unit, const Timestamp& before, const Timestamp& now) {
  if (interval.unit() != unit || interval.count() <= 0) return false;
  const std::int64_t previous = before.get(unit).count();
  const std::int64_t current = now.get(unit).count();
  return previous / interval.count() != current / interval.count();
}

}  // namespace composer
