#pragma once
/// \file
/// composer::Timestamp — an immutable snapshot of training progress in every time unit.

#include <array>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <composer/core/time.hpp>

namespace composer {

/// A snapshot of training progress: iterations, epochs, batches, samples and tokens in total, the
/// within-iteration and within-epoch counters, and wall-clock durations. Advancing returns a new snapshot.
/// Composer counterpart: `composer.core.Timestamp`.
class Timestamp {
 public:
  /// Wall-clock durations in seconds.
  using Seconds = std::chrono::duration<double>;

  /// A timestamp at the very start of training.
  Timestamp() = default;

  /// Iterations completed. Composer counterpart: `Timestamp.iteration`.
  Time iteration() const noexcept { return Time::from_iteration(iteration_); }
  /// Epochs completed. Composer counterpart: `Timestamp.epoch`.
  Time epoch() const noexcept { return Time::from_epoch(epoch_); }
  /// Batches (optimizer steps) completed. Composer counterpart: `Timestamp.batch`.
  Time batch() const noexcept { return Time::from_batch(batch_); }
  /// Samples trained on. Composer counterpart: `Timestamp.sample`.
  Time sample() const noexcept { return Time::from_sample(sample_); }
  /// Tokens trained on. Composer counterpart: `Timestamp.token`.
  Time token() const noexcept { return Time::from_token(token_); }
  /// Epochs completed in the current iteration. Composer counterpart: `Timestamp.epoch_in_iteration`.
  Time epoch_in_iteration() const noexcept { return Time::from_epoch(epoch_in_iteration_); }
  /// Tokens trained on in the current iteration. Composer counterpart: `Timestamp.token_in_iteration`.
  Time token_in_iteration() const noexcept { return Time::from_token(token_in_iteration_); }
  /// Batches completed in the current epoch. Composer counterpart: `Timestamp.batch_in_epoch`.
  Time batch_in_epoch() const noexcept { return Time::from_batch(batch_in_epoch_); }
  /// Samples trained on in the current epoch. Composer counterpart: `Timestamp.sample_in_epoch`.
  Time sample_in_epoch() const noexcept { return Time::from_sample(sample_in_epoch_); }
  /// Tokens trained on in the current epoch. Composer counterpart: `Timestamp.token_in_epoch`.
  Time token_in_epoch() const noexcept { return Time::from_token(token_in_epoch_); }
  /// Total wall-clock training time. Composer counterpart: `Timestamp.total_wct`.
  Seconds total_wct() const noexcept { return total_wct_; }
  /// Wall-clock time of the current iteration. Composer counterpart: `Timestamp.iteration_wct`.
  Seconds iteration_wct() const noexcept { return iteration_wct_; }
  /// Wall-clock time of the current epoch. Composer counterpart: `Timestamp.epoch_wct`.
  Seconds epoch_wct() const noexcept { return epoch_wct_; }
  /// Wall-clock time of the last batch. Composer counterpart: `Timestamp.batch_wct`.
  Seconds batch_wct() const noexcept { return batch_wct_; }

  /// The counter in `unit`: iterations, epochs, batches, samples, tokens, or whole seconds of `total_wct`.
  /// Throws `std::invalid_argument` for `dur`, which is not a counter. Composer counterpart: `Timestamp.get`.
  Time get(TimeUnit unit) const {
    switch (unit) {
      case TimeUnit::ITERATION: return iteration();
      case TimeUnit::EPOCH: return epoch();
      case TimeUnit::BATCH: return batch();
      case TimeUnit::SAMPLE: return sample();
      case TimeUnit::TOKEN: return token();
      case TimeUnit::SECOND: return Time::from_second(static_cast<std::int64_t>(total_wct_.count()));
      case TimeUnit::DURATION: break;
    }
    throw std::invalid_argument("composer: a Timestamp has no counter in unit 'dur'; convert with the max duration");
  }

  /// The snapshot after one more batch of `samples` samples and `tokens` tokens that took `duration`.
  /// Composer counterpart: `Timestamp.to_next_batch`.
  [[nodiscard]] Timestamp to_next_batch(std::int64_t samples = 0, std::int64_t tokens = 0,
                                        Seconds duration = Seconds{0}) const {
    if (samples < 0 || tokens < 0) throw std::invalid_argument("composer: a batch cannot have a negative size");
    Timestamp next = *this;
    next.batch_ += 1;
    next.batch_in_epoch_ += 1;
    next.sample_ += samples;
    next.sample_in_epoch_ += samples;
    next.token_ += tokens;
    next.token_in_epoch_ += tokens;
    next.token_in_iteration_ += tokens;
    next.total_wct_ += duration;
    next.iteration_wct_ += duration;
    next.epoch_wct_ += duration;
    next.batch_wct_ = duration;
    return next;
  }

  /// The snapshot at the start of the next epoch: within-epoch counters reset. Composer counterpart:
  /// `Timestamp.to_next_epoch`.
  [[nodiscard]] Timestamp to_next_epoch(Seconds duration = Seconds{0}) const {
    Timestamp next = *this;
    next.epoch_ += 1;
    next.epoch_in_iteration_ += 1;
    next.batch_in_epoch_ = 0;
    next.sample_in_epoch_ = 0;
    next.token_in_epoch_ = 0;
    next.total_wct_ += duration;
    next.iteration_wct_ += duration;
    next.epoch_wct_ = Seconds{0};
    next.batch_wct_ = Seconds{0};
    return next;
  }

  /// The snapshot at the start of the next iteration: within-iteration and within-epoch counters reset.
  /// Composer counterpart: `Timestamp.to_next_iteration`.
  [[nodiscard]] Timestamp to_next_iteration(Seconds duration = Seconds{0}) const {
    Timestamp next = *this;
    next.iteration_ += 1;
    next.epoch_in_iteration_ = 0;
    next.token_in_iteration_ = 0;
    next.batch_in_epoch_ = 0;
    next.sample_in_epoch_ = 0;
    next.token_in_epoch_ = 0;
    next.total_wct_ += duration;
    next.iteration_wct_ = Seconds{0};
    next.epoch_wct_ = Seconds{0};
    next.batch_wct_ = Seconds{0};
    return next;
  }

  /// Names of the ten counters, in `counters()` order.
  static constexpr std::array<std::string_view, 10> counter_names = {
      "iteration", "epoch", "batch", "sample", "token", "epoch_in_iteration", "token_in_iteration",
      "batch_in_epoch", "sample_in_epoch", "token_in_epoch"};
  /// Names of the four wall-clock durations, in `durations()` order.
  static constexpr std::array<std::string_view, 4> duration_names = {"total_wct", "iteration_wct", "epoch_wct",
                                                                     "batch_wct"};

  /// The ten counters, in `counter_names` order: what a checkpoint stores. Composer counterpart: the counter
  /// part of `Timestamp.state_dict`.
  std::array<std::int64_t, 10> counters() const noexcept {
    return {iteration_, epoch_, batch_, sample_, token_, epoch_in_iteration_, token_in_iteration_, batch_in_epoch_,
            sample_in_epoch_, token_in_epoch_};
  }
  /// The four wall-clock durations in seconds, in `duration_names` order.
  std::array<double, 4> durations() const noexcept {
    return {total_wct_.count(), iteration_wct_.count(), epoch_wct_.count(), batch_wct_.count()};
  }
  /// Rebuilds a timestamp from `counters()` and `durations()`; throws `std::invalid_argument` on a negative
  /// counter or an inconsistent one (a within-epoch counter above its total). Composer counterpart:
  /// `Timestamp.load_state_dict`.
  static Timestamp from_counters(const std::array<std::int64_t, 10>& c, const std::array<double, 4>& d = {}) {
    for (std::size_t i = 0; i < c.size(); ++i)
      if (c[i] < 0)
        throw std::invalid_argument("composer: timestamp counter '" + std::string(counter_names[i]) +
                                    "' is negative (" + std::to_string(c[i]) + ")");
    if (c[7] > c[2] || c[8] > c[3] || c[9] > c[4] || c[5] > c[1] || c[6] > c[4])
      throw std::invalid_argument("composer: timestamp counters are inconsistent (a within-epoch or within-iteration "
                                  "count exceeds its total)");
    Timestamp t;
    t.iteration_ = c[0];
    t.epoch_ = c[1];
    t.batch_ = c[2];
    t.sample_ = c[3];
    t.token_ = c[4];
    t.epoch_in_iteration_ = c[5];
    t.token_in_iteration_ = c[6];
    t.batch_in_epoch_ = c[7];
    t.sample_in_epoch_ = c[8];
    t.token_in_epoch_ = c[9];
    t.total_wct_ = Seconds{d[0]};
    t.iteration_wct_ = Seconds{d[1]};
    t.epoch_wct_ = Seconds{d[2]};
    t.batch_wct_ = Seconds{d[3]};
    return t;
  }

  /// Equal when every counter is equal (wall-clock durations are not compared).
  friend bool operator==(const Timestamp& a, const Timestamp& b) noexcept { return a.counters() == b.counters(); }

  /// Compares the counter in `t`'s unit with `t` (`timestamp < Time("10ep")`). Composer counterpart:
  /// `Timestamp.__lt__` and friends.
  friend bool operator<(const Timestamp& ts, const Time& t) { return ts.get(t.unit()) < t; }
  /// See `operator<`.
  friend bool operator<=(const Timestamp& ts, const Time& t) { return ts.get(t.unit()) <= t; }
  /// See `operator<`.
  friend bool operator>(const Timestamp& ts, const Time& t) { return ts.get(t.unit()) > t; }
  /// See `operator<`.
  friend bool operator>=(const Timestamp& ts, const Time& t) { return ts.get(t.unit()) >= t; }

  /// A one-line summary, e.g. `"ep=1 ba=469 sp=60000 tok=0"`.
  std::string to_string() const {
    return "ep=" + std::to_string(epoch_) + " ba=" + std::to_string(batch_) + " sp=" + std::to_string(sample_) +
           " tok=" + std::to_string(token_) + " ba_in_ep=" + std::to_string(batch_in_epoch_);
  }

 private:
  std::int64_t iteration_ = 0, epoch_ = 0, batch_ = 0, sample_ = 0, token_ = 0;
  std::int64_t epoch_in_iteration_ = 0, token_in_iteration_ = 0;
  std::int64_t batch_in_epoch_ = 0, sample_in_epoch_ = 0, token_in_epoch_ = 0;
  Seconds total_wct_{0}, iteration_wct_{0}, epoch_wct_{0}, batch_wct_{0};
};

}  // namespace composer
