#pragma once
/// \file
/// Composer's stateless learning-rate schedules. Each schedule is a small struct of public options (with
/// Composer's defaults) whose `operator()(state, ssr)` returns the multiplier of the optimizers' initial
/// learning rates at `state.timestamp`; every one of them can be stored in a `composer::Scheduler`.
///
/// Times are `composer::Time`s (write `Time("10ba")`, `Time("1ep")`, `Time("0.25dur")`). Before it is compared
/// with the timestamp, every schedule time goes through `convert_time`, which reproduces Composer's rules:
/// `dur` is a fraction of `state.max_duration()` (counted in batches when max_duration is in epochs), `ep`
/// becomes batches, and everything but `dur` is stretched by the scale-schedule ratio. Problems (a missing
/// max_duration or dataloader_len, wall-clock units, zero-length periods, warm-up unit mismatches) throw
/// `std::invalid_argument` with a message `"composer: <Schedule>: <problem>"`.
/// Composer counterpart: `composer.optim.scheduler`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <composer/core/state.hpp>
#include <composer/core/time.hpp>

namespace composer::optim {

namespace detail {

[[noreturn]] inline void schedule_error(std::string_view who, const std::string& problem) {
  throw std::invalid_argument("composer: " + std::string(who) + ": " + problem);
}

inline std::string number_text(double value) { return composer::detail::python_float_repr(value); }

// Python's `int(x)` for a float: truncation toward zero; NaN, infinities and values beyond 64 bits are refused.
inline std::int64_t truncate_count(double value, std::string_view who, const std::string& what) {
  if (!std::isfinite(value) || !(std::fabs(value) < 9.2e18))
    schedule_error(who, what + " is not a representable count (" + number_text(value) + ")");
  return static_cast<std::int64_t>(std::trunc(value));
}

// `spec` together with what it became, for messages: "t_max 30ba (0ba after conversion with ssr 0.01)".
inline std::string describe(std::string_view name, const Time& spec, const Time& converted, double ssr) {
  std::string text = std::string(name) + " " + spec.to_string();
  if (!(converted.unit() == spec.unit() && converted.value() == spec.value()) || ssr != 1.0)
    text += " (" + converted.to_string() + " after conversion with ssr " + number_text(ssr) + ")";
  return text;
}

inline void require_number(double value, std::string_view who, std::string_view option) {
  if (std::isnan(value)) schedule_error(who, std::string(option) + " must be set to a number");
}

}  // namespace detail

/// Converts a schedule time to the unit it is compared in, exactly as Composer's `_convert_time` does:
/// - `sec` is refused, and `state.max_duration()` must be set (for every unit);
/// - `dur`: when max_duration is in epochs, `int(f · dataloader_len · max_epochs)` **batches**; otherwise
///   `int(f · max_duration)` in max_duration's unit. Not scaled by `ssr` (max_duration already is);
/// - `ep`: first `× dataloader_len` batches, then like the other units;
/// - `ba`, `sp`, `tok`, `iter`: `int(value · ssr)` in the same unit.
/// `int` truncates toward zero. `dur` with an epoch max_duration and `ep` need `state.dataloader_len`.
/// `who` names the caller in error messages.
inline Time convert_time(const Time& time, const State& state, double ssr = 1.0, std::string_view who = "convert_time") {
  if (time.unit() == TimeUnit::SECOND)
    detail::schedule_error(who, "wall-clock time " + time.to_string() + " is not an allowed schedule unit");
  const auto& max_duration = state.max_duration();
  if (!max_duration)
    detail::schedule_error(who, "state.max_duration is not set; schedules need it to convert " + time.to_string());
  auto batches_per_epoch = [&]() -> double {
    if (!state.dataloader_len)
      detail::schedule_error(who, "cannot convert " + time.to_string() + " to batches: state.dataloader_len is not set");
    return static_cast<double>(*state.dataloader_len);
  };
  if (time.unit() == TimeUnit::DURATION) {
    if (max_duration->unit() == TimeUnit::EPOCH) {
      const double batches = time.value() * batches_per_epoch() * max_duration->value();
      return Time::from_batch(detail::truncate_count(batches, who, time.to_string() + " in batches"));
    }
    const double amount = time.value() * max_duration->value();
    return Time(detail::truncate_count(amount, who, time.to_string() + " of " + max_duration->to_string()),
                max_duration->unit());
  }
  double amount = time.value();
  TimeUnit unit = time.unit();
  if (unit == TimeUnit::EPOCH) {
    amount = static_cast<double>(time.count()) * batches_per_epoch();
    unit = TimeUnit::BATCH;
  }
  return Time(detail::truncate_count(amount * ssr, who, time.to_string() + " scaled by ssr " + detail::number_text(ssr)),
              unit);
}

/// The training length under a scale-schedule ratio: `max_duration × ssr` in the same unit, truncated toward
/// zero. Throws `std::invalid_argument` when the result is 0, or when `ssr` is not a positive finite number.
/// Composer counterpart: `composer.trainer.trainer._scale_max_duration_by_ssr`.
inline Time scale_schedule_ratio_max_duration(Time max_duration, double ssr) {
  constexpr std::string_view who = "scale_schedule_ratio";
  if (!std::isfinite(ssr) || !(ssr > 0))
    detail::schedule_error(who, "the ratio must be a positive finite number, got " + detail::number_text(ssr));
  Time scaled = max_duration.is_duration()
                    ? Time::from_duration(max_duration.value() * ssr)
                    : Time(detail::truncate_count(max_duration.value() * ssr, who,
                                                  max_duration.to_string() + " scaled by " + detail::number_text(ssr)),
                           max_duration.unit());
  if (scaled.value() == 0)
    detail::schedule_error(who, "scaling max_duration " + max_duration.to_string() + " by " +
                                    detail::number_text(ssr) + " reduces it to " + scaled.to_string() +
                                    "; use a larger ratio or a longer max_duration");
  return scaled;
}

/// The falling half of a cosine stretched over x ∈ [0, 1] (x is clipped to it): `max_y` at 0, `min_y` at 1,
/// i.e. `min_y + (max_y − min_y)(1 + cos(πx))/2`.
inline double cosine_anneal(double x, double min_y = 0.0, double max_y = 1.0) {
  x = std::min(std::max(x, 0.0), 1.0);
  return min_y + (max_y - min_y) * (1.0 + std::cos(x * std::numbers::pi)) / 2.0;
}

namespace detail {

// Current count in `unit` over `length` (Composer: `(timestamp.get(unit) / length).value`); a zero length is
// refused where Composer divides by zero.
inline double elapsed_over(const State& state, const Time& length, std::string_view who, std::string_view name,
                           const Time& spec, double ssr) {
  if (length.value() == 0) schedule_error(who, describe(name, spec, length, ssr) + " must not be zero");
  return state.timestamp.get(length.unit()).value() / length.value();
}

// Composer's `_raise_if_warmup_and_max_incompatible`, on converted times.
inline void check_warmup_units(const Time& warmup_spec, const Time& warmup, const Time& max_spec, const Time& max,
                               double ssr, std::string_view who) {
  if (warmup.unit() != max.unit())
    schedule_error(who, describe("t_warmup", warmup_spec, warmup, 1.0) + " and " + describe("t_max", max_spec, max, ssr) +
                            " must use the same units");
}

// Composer's `_raise_if_max_duration_exceeds_t_max`, on the converted t_max: refused when it is comparable with
// max_duration (same unit, or batches against epochs through dataloader_len) and shorter than it.
inline void check_t_max_covers_training(const Time& max_spec, const Time& max, double ssr, const State& state,
                                        std::string_view who) {
  const Time& training = *state.max_duration();
  bool shorter = false;
  if (max.unit() == training.unit()) {
    shorter = max.value() < training.value();
  } else if (max.unit() == TimeUnit::BATCH && training.unit() == TimeUnit::EPOCH && state.dataloader_len) {
    shorter = max.value() < training.value() * static_cast<double>(*state.dataloader_len);
  } else if (max.unit() == TimeUnit::EPOCH && training.unit() == TimeUnit::BATCH && state.dataloader_len) {
    shorter = max.value() * static_cast<double>(*state.dataloader_len) < training.value();
  }
  if (shorter)
    schedule_error(who, describe("t_max", max_spec, max, ssr) + " must be greater than or equal to max_duration " +
                            training.to_string() + ", or the schedule is undefined for the end of training");
}

// The linear warm-up ramp 0 → 1 (before the caller's scaling) over `t_warmup` converted with `ramp_ssr`.
inline double warmup_ramp(const State& state, const Time& t_warmup, double ramp_ssr, std::string_view who) {
  const Time ramp = convert_time(t_warmup, state, ramp_ssr, who);
  return std::min(1.0, elapsed_over(state, ramp, who, "t_warmup", t_warmup, ramp_ssr));
}

// Where a warm-up schedule stands: in the warm-up with the ramp's value in [0, 1], or after it with τ_w, the
// clipped fraction of [t_warmup, t_max] elapsed.
struct WarmupPosition {
  bool warming_up;
  double fraction;
};

inline WarmupPosition warmup_position(const State& state, const Time& t_warmup_spec, const Time& t_max_spec, double ssr,
                                      bool scale_warmup, std::string_view who) {
  const Time t_warmup = convert_time(t_warmup_spec, state, 1.0, who);
  const Time t_max = convert_time(t_max_spec, state, ssr, who);
  check_warmup_units(t_warmup_spec, t_warmup, t_max_spec, t_max, ssr, who);
  check_t_max_covers_training(t_max_spec, t_max, ssr, state, who);
  if (state.timestamp < t_warmup) return {true, warmup_ramp(state, t_warmup_spec, scale_warmup ? ssr : 1.0, who)};
  const double now = state.timestamp.get(t_warmup.unit()).value();
  const double tau = t_max > t_warmup ? (now - t_warmup.value()) / (t_max.value() - t_warmup.value()) : 0.0;
  return {false, std::min(1.0, tau)};
}

// Python's `base ** power` for the polynomial decay: 0 to a negative power is a division by zero there.
inline double polynomial_power(double base, double power, std::string_view who) {
  if (base == 0.0 && power < 0)
    schedule_error(who, "power " + number_text(power) + " is negative, so the schedule is undefined at t_max");
  return std::pow(base, power);
}

}  // namespace detail

/// Decays by γ every `step_size`: `γ^int(t / step_size)`. Composer counterpart: `composer.optim.StepScheduler`.
struct StepScheduler {
  Time step_size;      ///< time between decays (required)
  double gamma = 0.1;  ///< decay factor

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "StepScheduler";
    const Time step = convert_time(step_size, state, ssr, who);
    const double steps = std::trunc(detail::elapsed_over(state, step, who, "step_size", step_size, ssr));
    return std::pow(gamma, steps);
  }
};

/// Decays by γ at each milestone reached: `γ^(number of milestones ≤ t)`. Composer counterpart:
/// `composer.optim.MultiStepScheduler`.
struct MultiStepScheduler {
  std::vector<Time> milestones = {};  ///< times at which the rate is multiplied by γ
  double gamma = 0.1;            ///< decay factor

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    std::vector<Time> converted;
    converted.reserve(milestones.size());
    for (const Time& milestone : milestones) converted.push_back(convert_time(milestone, state, ssr, "MultiStepScheduler"));
    double factor = 1.0;
    for (const Time& milestone : converted)
      if (state.timestamp >= milestone) factor *= gamma;
    return factor;
  }
};

/// α before `t_max`, 1 from then on. Composer counterpart: `composer.optim.ConstantScheduler`.
struct ConstantScheduler {
  double alpha = 1.0;                     ///< multiplier until t_max
  Time t_max = Time::from_duration(1.0);  ///< end of the constant phase

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    return state.timestamp < convert_time(t_max, state, ssr, "ConstantScheduler") ? alpha : 1.0;
  }
};

/// From α_i to α_f linearly over `t_max`, then α_f: `α_i + (α_f − α_i)·min(1, t / t_max)`. Composer counterpart:
/// `composer.optim.LinearScheduler`.
struct LinearScheduler {
  double alpha_i = 1.0;                   ///< initial multiplier
  double alpha_f = 0.0;                   ///< final multiplier
  Time t_max = Time::from_duration(1.0);  ///< length of the ramp

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "LinearScheduler";
    const Time length = convert_time(t_max, state, ssr, who);
    const double tau = std::min(1.0, detail::elapsed_over(state, length, who, "t_max", t_max, ssr));
    return alpha_i + tau * (alpha_f - alpha_i);
  }
};

/// Decays by γ every `decay_period`, continuously: `γ^(t / decay_period)`. Composer counterpart:
/// `composer.optim.ExponentialScheduler`.
struct ExponentialScheduler {
  double gamma = std::numeric_limits<double>::quiet_NaN();  ///< factor per decay period (required)
  Time decay_period = Time::from_epoch(1);                  ///< time over which the rate is multiplied by γ

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "ExponentialScheduler";
    detail::require_number(gamma, who, "gamma");
    const Time period = convert_time(decay_period, state, ssr, who);
    return std::pow(gamma, detail::elapsed_over(state, period, who, "decay_period", decay_period, ssr));
  }
};

/// The falling half of a cosine from 1 to α_f over `t_max`: `α_f + (1 − α_f)(1 + cos(πτ))/2`, τ = t / t_max clipped
/// to [0, 1]. Composer counterpart: `composer.optim.CosineAnnealingScheduler`.
struct CosineAnnealingScheduler {
  Time t_max = Time::from_duration(1.0);  ///< length of the decay
  double alpha_f = 0.0;                   ///< final multiplier

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "CosineAnnealingScheduler";
    const Time length = convert_time(t_max, state, ssr, who);
    return cosine_anneal(detail::elapsed_over(state, length, who, "t_max", t_max, ssr), alpha_f);
  }
};

/// Cosine annealing from 1 to α_f, restarted at the end of each cycle; the first cycle lasts `t_0` and each next
/// one `int(t_mult × previous)`. Composer counterpart: `composer.optim.CosineAnnealingWarmRestartsScheduler`.
struct CosineAnnealingWarmRestartsScheduler {
  Time t_0;              ///< length of the first cycle (required)
  double t_mult = 1.0;   ///< growth factor of each next cycle
  double alpha_f = 0.0;  ///< multiplier at the end of each cycle

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "CosineAnnealingWarmRestartsScheduler";
    const Time first = convert_time(t_0, state, ssr, who);
    if (first.value() < 0) detail::schedule_error(who, detail::describe("t_0", t_0, first, ssr) + " is negative");
    const std::int64_t now = state.timestamp.get(first.unit()).count();
    std::int64_t length = first.count();
    std::int64_t end = length;
    while (end <= now) {
      if (length == 0)
        detail::schedule_error(who, "the interval between restarts has decayed to 0 (" +
                                        detail::describe("t_0", t_0, first, ssr) + ", t_mult " +
                                        detail::number_text(t_mult) + ")");
      if (!(t_mult >= 0))
        detail::schedule_error(who, "t_mult must be a non-negative number, got " + detail::number_text(t_mult));
      const double next = std::trunc(t_mult * static_cast<double>(length));
      if (next > static_cast<double>(now - end)) {
        // The cycle that contains `now` starts at `end` (it may be too long for a 64-bit count).
        return cosine_anneal(static_cast<double>(now - end) / next, alpha_f);
      }
      length = static_cast<std::int64_t>(next);
      end += length;
    }
    const std::int64_t start = end - length;
    return cosine_anneal(static_cast<double>(now - start) / static_cast<double>(length), alpha_f);
  }
};

/// Decays as a power of the remaining fraction: `α_f + (1 − α_f)(1 − τ)^power`, τ = min(1, t / t_max). Composer
/// counterpart: `composer.optim.PolynomialScheduler`.
struct PolynomialScheduler {
  double power = std::numeric_limits<double>::quiet_NaN();  ///< exponent κ (required)
  Time t_max = Time::from_duration(1.0);                    ///< length of the decay
  double alpha_f = 0.0;                                     ///< final multiplier

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "PolynomialScheduler";
    detail::require_number(power, who, "power");
    const Time length = convert_time(t_max, state, ssr, who);
    const double tau = std::min(1.0, detail::elapsed_over(state, length, who, "t_max", t_max, ssr));
    return alpha_f + detail::polynomial_power(1.0 - tau, power, who) * (1.0 - alpha_f);
  }
};

/// A linear warm-up from 0 to 1 over `t_warmup`, then MultiStep decay: γ at each milestone reached. The warm-up
/// ends at the unscaled `t_warmup`; `scale_warmup` stretches only the ramp by the scale-schedule ratio, as in
/// Composer. Milestones are scaled. Composer counterpart: `composer.optim.MultiStepWithWarmupScheduler`.
struct MultiStepWithWarmupScheduler {
  Time t_warmup;                 ///< warm-up length (required)
  std::vector<Time> milestones = {};  ///< times at which the rate is multiplied by γ
  double gamma = 0.1;            ///< decay factor
  bool scale_warmup = false;     ///< whether the scale-schedule ratio also stretches the warm-up ramp

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "MultiStepWithWarmupScheduler";
    const Time warmup = convert_time(t_warmup, state, 1.0, who);
    if (state.timestamp < warmup) return detail::warmup_ramp(state, t_warmup, scale_warmup ? ssr : 1.0, who);
    return MultiStepScheduler{milestones, gamma}(state, ssr);
  }
};

namespace detail {
// Shared by the linear and constant warm-up schedules (which differ only in their names).
inline double linear_with_warmup(const State& state, double ssr, const Time& t_warmup, double alpha_i, double alpha_f,
                                 const Time& t_max, bool scale_warmup, std::string_view who) {
  const auto position = warmup_position(state, t_warmup, t_max, ssr, scale_warmup, who);
  if (position.warming_up) return position.fraction * alpha_i;
  return alpha_i + position.fraction * (alpha_f - alpha_i);
}
}  // namespace detail

/// A linear warm-up from 0 to α, then α (also after `t_max`, unlike ConstantScheduler). t_warmup and t_max must
/// convert to one unit, and t_max must not be shorter than max_duration. Composer counterpart:
/// `composer.optim.ConstantWithWarmupScheduler`.
struct ConstantWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length (required)
  double alpha = 1.0;                     ///< multiplier after the warm-up
  Time t_max = Time::from_duration(1.0);  ///< end of the schedule
  bool scale_warmup = false;              ///< whether the scale-schedule ratio also stretches the warm-up ramp

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    return detail::linear_with_warmup(state, ssr, t_warmup, alpha, alpha, t_max, scale_warmup,
                                      "ConstantWithWarmupScheduler");
  }
};

/// A linear warm-up from 0 to α_i over `t_warmup`, then linear from α_i to α_f over [t_warmup, t_max]:
/// `α_i + (α_f − α_i)·τ_w`, τ_w = min(1, (t − t_warmup) / (t_max − t_warmup)) (0 when t_max ≤ t_warmup). The
/// warm-up ends at the unscaled t_warmup; `scale_warmup` stretches only the ramp. t_warmup and t_max must convert
/// to one unit, and t_max must not be shorter than max_duration. Composer counterpart:
/// `composer.optim.LinearWithWarmupScheduler`.
struct LinearWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length (required)
  double alpha_i = 1.0;                   ///< multiplier at the end of the warm-up
  double alpha_f = 0.0;                   ///< final multiplier
  Time t_max = Time::from_duration(1.0);  ///< end of the schedule
  bool scale_warmup = false;              ///< whether the scale-schedule ratio also stretches the warm-up ramp

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    return detail::linear_with_warmup(state, ssr, t_warmup, alpha_i, alpha_f, t_max, scale_warmup,
                                      "LinearWithWarmupScheduler");
  }
};

/// A linear warm-up from 0 to 1 over `t_warmup`, then cosine annealing to α_f over [t_warmup, t_max]:
/// `α_f + (1 − α_f)(1 + cos(πτ_w))/2`. Same rules as LinearWithWarmupScheduler. Composer counterpart:
/// `composer.optim.CosineAnnealingWithWarmupScheduler`.
struct CosineAnnealingWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length (required)
  Time t_max = Time::from_duration(1.0);  ///< end of the decay
  double alpha_f = 0.0;                   ///< final multiplier
  bool scale_warmup = false;              ///< whether the scale-schedule ratio also stretches the warm-up ramp

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const auto position =
        detail::warmup_position(state, t_warmup, t_max, ssr, scale_warmup, "CosineAnnealingWithWarmupScheduler");
    return position.warming_up ? position.fraction : cosine_anneal(position.fraction, alpha_f);
  }
};

/// A linear warm-up from 0 to 1 over `t_warmup`, then `α_f + (1 − α_f)(1 − τ_w)^power` over [t_warmup, t_max].
/// Same rules as LinearWithWarmupScheduler. Composer counterpart: `composer.optim.PolynomialWithWarmupScheduler`.
struct PolynomialWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length (required)
  double power = 2.0;                     ///< exponent κ
  Time t_max = Time::from_duration(1.0);  ///< end of the decay
  double alpha_f = 0.0;                   ///< final multiplier
  bool scale_warmup = false;              ///< whether the scale-schedule ratio also stretches the warm-up ramp

  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    constexpr std::string_view who = "PolynomialWithWarmupScheduler";
    const auto position = detail::warmup_position(state, t_warmup, t_max, ssr, scale_warmup, who);
    if (position.warming_up) return position.fraction;
    return alpha_f + detail::polynomial_power(1.0 - position.fraction, power, who) * (1.0 - alpha_f);
  }
};

}  // namespace composer::optim
