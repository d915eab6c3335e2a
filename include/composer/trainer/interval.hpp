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

/// Whether an interval can be given in `unit`: the units the Trainer counts, ep, ba, sp and tok. Composer
/// counterpart: the units `create_interval_scheduler` accepts (less `dur`).
constexpr bool counted_interval_unit(TimeUnit unit) noexcept {
  return unit == TimeUnit::EPOCH || unit == TimeUnit::BATCH || unit == TimeUnit::SAMPLE || unit == TimeUnit::TOKEN;
}

/// Whether the last batch (from `before` to `now`) crossed a multiple of `interval` when it is counted per batch
/// (in ba, sp or tok): what BATCH_END and BATCH_CHECKPOINT check. An interval in ep fires at the epoch's end instead.
inline bool batch_interval_crossed(const Time& interval, const Timestamp& before, const Timestamp& now) {
  return interval.unit() != TimeUnit::EPOCH && counted_interval_unit(interval.unit()) &&
         interval_crossed(interval, interval.unit(), before, now);
}

}  // namespace composer
