#pragma once
/// \file
/// Composer's learning-rate schedules: pure functions of the training time that return a multiplier of the
/// optimizers' initial learning rates. Each type converts to `composer::Scheduler`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include <composer/core/state.hpp>
#include <composer/core/time.hpp>

namespace composer::optim {

namespace detail {
[[noreturn]] inline void fail(const char* scheduler, const std::string& what) {
  throw std::invalid_argument(std::string("composer: ") + scheduler + ": " + what);
}
}  // namespace detail

/// Converts a schedule time to the unit it is compared in, as Composer does: `dur` becomes batches when
/// `max_duration` is in epochs (`⌊f · batches_per_epoch · max_epochs⌋`) and otherwise `⌊f · max_duration⌋` in
/// max_duration's unit (already scaled by the scale-schedule ratio, so not scaled again); `ep` becomes batches
/// (`× batches_per_epoch`) and then, like every other unit, is multiplied by `ssr` and truncated; `sec` is
/// refused. Composer counterpart: `composer.optim.scheduler._convert_time`.
inline Time convert_time(const Time& time, const State& state, double ssr = 1.0, const char* scheduler = "scheduler") {
  if (time.unit() == TimeUnit::SECOND) detail::fail(scheduler, "wall-clock time (" + time.to_string() + ") is not a schedule unit");
  const auto& max = state.max_duration();
  if (!max) detail::fail(scheduler, "the state has no max_duration");
  auto batches_per_epoch = [&]() -> std::int64_t {
    if (!state.dataloader_len)
      detail::fail(scheduler, "converting " + time.to_string() + " needs the data loader's length (state.dataloader_len)");
    return *state.dataloader_len;
  };
  if (time.unit() == TimeUnit::DURATION) {
    if (max->unit() == TimeUnit::EPOCH)
      return Time::from_batch(static_cast<std::int64_t>(time.value() * static_cast<double>(batches_per_epoch()) * max->value()));
    return Time(static_cast<std::int64_t>(time.value() * max->value()), max->unit());
  }
  Time converted = time.unit() == TimeUnit::EPOCH ? Time::from_batch(time.count() * batches_per_epoch()) : time;
  return Time(static_cast<std::int64_t>(static_cast<double>(converted.count()) * ssr), converted.unit());
}

/// Cosine from `max_y` at x = 0 to `min_y` at x = 1, with x clipped to [0, 1].
inline double cosine_anneal(double x, double min_y = 0.0, double max_y = 1.0) {
  x = std::clamp(x, 0.0, 1.0);
  return min_y + (max_y - min_y) * (1.0 + std::cos(x * std::numbers::pi)) / 2.0;
}

namespace detail {
// Elapsed fraction of `t_max`, in t_max's unit.
inline double fraction_of(const State& state, const Time& t_max) {
  if (t_max.value() == 0) return 1.0;
  return static_cast<double>(state.timestamp.get(t_max.unit()).count()) / t_max.value();
}

// Composer's checks of a warm-up schedule: both times in one unit, and t_max not shorter than max_duration.
inline void check_warmup(const State& state, const Time& t_warmup, const Time& t_max, const char* scheduler) {
  if (t_warmup.unit() != t_max.unit())
    fail(scheduler, "t_warmup " + t_warmup.to_string() + " and t_max " + t_max.to_string() + " must use the same unit");
  const Time& max = *state.max_duration();
  bool shorter = false;
  if (t_max.unit() == max.unit())
    shorter = t_max.value() < max.value();
  else if (t_max.unit() == TimeUnit::BATCH && max.unit() == TimeUnit::EPOCH && state.dataloader_len)
    shorter = t_max.value() < max.value() * static_cast<double>(*state.dataloader_len);
  if (shorter)
    fail(scheduler, "t_max " + t_max.to_string() + " must be at least max_duration " + max.to_string() +
                        ", or the schedule is undefined for part of training");
}

// The linear ramp 0 → `to` over t_warmup (scaled by ssr only with scale_warmup), and the fraction of the
// post-warm-up part that has elapsed.
struct WarmupPhase {
  bool warming_up;
  double value;  // the ramp's value while warming up, else the fraction τ_w ∈ [0, 1]
};
inline WarmupPhase warmup_phase(const State& state, const Time& t_warmup_spec, const Time& t_max_spec, double ssr,
                                bool scale_warmup, double to, const char* scheduler) {
  const Time t_warmup = convert_time(t_warmup_spec, state, 1.0, scheduler);
  const Time t_max = convert_time(t_max_spec, state, ssr, scheduler);
  check_warmup(state, t_warmup, t_max, scheduler);
  if (state.timestamp < t_warmup) {
    const Time ramp = convert_time(t_warmup_spec, state, scale_warmup ? ssr : 1.0, scheduler);
    return {true, to * std::min(1.0, fraction_of(state, ramp))};
  }
  const double now = static_cast<double>(state.timestamp.get(t_warmup.unit()).count());
  const double tau = t_max > t_warmup ? (now - t_warmup.value()) / (t_max.value() - t_warmup.value()) : 0.0;
  return {false, std::min(1.0, tau)};
}
}  // namespace detail

/// γ^⌊t / step_size⌋. Composer counterpart: `composer.optim.StepScheduler`.
struct StepScheduler {
  Time step_size;      ///< time between decays
  double gamma = 0.1;  ///< decay factor
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const Time step = convert_time(step_size, state, ssr, "StepScheduler");
    if (step.value() <= 0) detail::fail("StepScheduler", "step_size must be positive, got " + step_size.to_string());
    return std::pow(gamma, static_cast<double>(state.timestamp.get(step.unit()).count() / step.count()));
  }
};

/// γ^(number of milestones reached). Composer counterpart: `composer.optim.MultiStepScheduler`.
struct MultiStepScheduler {
  std::vector<Time> milestones;  ///< times at which the rate is multiplied by γ
  double gamma = 0.1;            ///< decay factor
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    double factor = 1.0;
    for (const Time& milestone : milestones)
      if (state.timestamp >= convert_time(milestone, state, ssr, "MultiStepScheduler")) factor *= gamma;
    return factor;
  }
};

/// α before t_max, then 1. Composer counterpart: `composer.optim.ConstantScheduler`.
struct ConstantScheduler {
  double alpha = 1.0;                     ///< multiplier until t_max
  Time t_max = Time::from_duration(1.0);  ///< end of the constant phase
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    return state.timestamp < convert_time(t_max, state, ssr, "ConstantScheduler") ? alpha : 1.0;
  }
};

/// α_i + (α_f − α_i)·min(1, t / t_max). Composer counterpart: `composer.optim.LinearScheduler`.
struct LinearScheduler {
  double alpha_i = 1.0;                   ///< initial multiplier
  double alpha_f = 0.0;                   ///< final multiplier
  Time t_max = Time::from_duration(1.0);  ///< length of the ramp
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const double tau = std::min(1.0, detail::fraction_of(state, convert_time(t_max, state, ssr, "LinearScheduler")));
    return alpha_i + tau * (alpha_f - alpha_i);
  }
};

/// γ^(t / decay_period). Composer counterpart: `composer.optim.ExponentialScheduler`.
struct ExponentialScheduler {
  double gamma;                               ///< factor per decay period
  Time decay_period = Time::from_epoch(1);    ///< time over which the rate is multiplied by γ
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const Time period = convert_time(decay_period, state, ssr, "ExponentialScheduler");
    if (period.value() <= 0) detail::fail("ExponentialScheduler", "decay_period must be positive");
    return std::pow(gamma, static_cast<double>(state.timestamp.get(period.unit()).count()) / period.value());
  }
};

/// α_f + (1 − α_f)(1 + cos(π·τ))/2 with τ = t / t_max clipped to [0, 1]. Composer counterpart:
/// `composer.optim.CosineAnnealingScheduler`.
struct CosineAnnealingScheduler {
  Time t_max = Time::from_duration(1.0);  ///< length of the decay
  double alpha_f = 0.0;                   ///< final multiplier
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    return cosine_anneal(detail::fraction_of(state, convert_time(t_max, state, ssr, "CosineAnnealingScheduler")), alpha_f);
  }
};

/// Cosine annealing restarted after t_0, then after t_0·t_mult, and so on. Composer counterpart:
/// `composer.optim.CosineAnnealingWarmRestartsScheduler`.
struct CosineAnnealingWarmRestartsScheduler {
  Time t_0;              ///< length of the first cycle
  double t_mult = 1.0;   ///< growth of each next cycle
  double alpha_f = 0.0;  ///< multiplier at the end of each cycle
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const Time first = convert_time(t_0, state, ssr, "CosineAnnealingWarmRestartsScheduler");
    const std::int64_t now = state.timestamp.get(first.unit()).count();
    std::int64_t length = first.count(), end = first.count();
    while (end <= now) {
      if (length == 0) detail::fail("CosineAnnealingWarmRestartsScheduler", "the cycle length has decayed to 0");
      length = static_cast<std::int64_t>(t_mult * static_cast<double>(length));
      end += length;
    }
    const std::int64_t start = end - length;
    return cosine_anneal(length ? static_cast<double>(now - start) / static_cast<double>(length) : 1.0, alpha_f);
  }
};

/// α_f + (1 − α_f)(1 − τ)^power with τ = min(1, t / t_max). Composer counterpart:
/// `composer.optim.PolynomialScheduler`.
struct PolynomialScheduler {
  double power;                           ///< exponent κ
  Time t_max = Time::from_duration(1.0);  ///< length of the decay
  double alpha_f = 0.0;                   ///< final multiplier
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const double tau = std::min(1.0, detail::fraction_of(state, convert_time(t_max, state, ssr, "PolynomialScheduler")));
    return alpha_f + std::pow(1.0 - tau, power) * (1.0 - alpha_f);
  }
};

/// Linear warm-up 0 → 1 over t_warmup, then MultiStep. Composer counterpart:
/// `composer.optim.MultiStepWithWarmupScheduler`.
struct MultiStepWithWarmupScheduler {
  Time t_warmup;                 ///< warm-up length (scaled by ssr only with scale_warmup)
  std::vector<Time> milestones;  ///< times at which the rate is multiplied by γ
  double gamma = 0.1;            ///< decay factor
  bool scale_warmup = false;     ///< whether the scale-schedule ratio stretches the warm-up too
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const Time warmup = convert_time(t_warmup, state, 1.0, "MultiStepWithWarmupScheduler");
    if (state.timestamp < warmup) {
      const Time ramp = convert_time(t_warmup, state, scale_warmup ? ssr : 1.0, "MultiStepWithWarmupScheduler");
      return std::min(1.0, detail::fraction_of(state, ramp));
    }
    return MultiStepScheduler{milestones, gamma}(state, ssr);
  }
};

/// Linear warm-up 0 → α_i over t_warmup, then α_i → α_f linearly until t_max. Composer counterpart:
/// `composer.optim.LinearWithWarmupScheduler`.
struct LinearWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length
  double alpha_i = 1.0;                   ///< multiplier at the end of the warm-up
  double alpha_f = 0.0;                   ///< final multiplier
  Time t_max = Time::from_duration(1.0);  ///< end of the schedule
  bool scale_warmup = false;              ///< whether the scale-schedule ratio stretches the warm-up too
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const auto phase = detail::warmup_phase(state, t_warmup, t_max, ssr, scale_warmup, alpha_i, "LinearWithWarmupScheduler");
    return phase.warming_up ? phase.value : alpha_i + phase.value * (alpha_f - alpha_i);
  }
};

/// Linear warm-up 0 → α, then α until t_max. Composer counterpart: `composer.optim.ConstantWithWarmupScheduler`.
struct ConstantWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length
  double alpha = 1.0;                     ///< multiplier after the warm-up
  Time t_max = Time::from_duration(1.0);  ///< end of the schedule
  bool scale_warmup = false;              ///< whether the scale-schedule ratio stretches the warm-up too
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    return LinearWithWarmupScheduler{t_warmup, alpha, alpha, t_max, scale_warmup}(state, ssr);
  }
};

/// Linear warm-up 0 → 1, then cosine decay to α_f at t_max. Composer counterpart:
/// `composer.optim.CosineAnnealingWithWarmupScheduler`.
struct CosineAnnealingWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length
  Time t_max = Time::from_duration(1.0);  ///< end of the decay
  double alpha_f = 0.0;                   ///< final multiplier
  bool scale_warmup = false;              ///< whether the scale-schedule ratio stretches the warm-up too
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const auto phase = detail::warmup_phase(state, t_warmup, t_max, ssr, scale_warmup, 1.0, "CosineAnnealingWithWarmupScheduler");
    return phase.warming_up ? phase.value : cosine_anneal(phase.value, alpha_f);
  }
};

/// Linear warm-up 0 → 1, then α_f + (1 − α_f)(1 − τ_w)^power. Composer counterpart:
/// `composer.optim.PolynomialWithWarmupScheduler`.
struct PolynomialWithWarmupScheduler {
  Time t_warmup;                          ///< warm-up length
  double power = 2.0;                     ///< exponent κ
  Time t_max = Time::from_duration(1.0);  ///< end of the decay
  double alpha_f = 0.0;                   ///< final multiplier
  bool scale_warmup = false;              ///< whether the scale-schedule ratio stretches the warm-up too
  /// The multiplier at the state's time.
  double operator()(const State& state, double ssr = 1.0) const {
    const auto phase = detail::warmup_phase(state, t_warmup, t_max, ssr, scale_warmup, 1.0, "PolynomialWithWarmupScheduler");
    return phase.warming_up ? phase.value : alpha_f + std::pow(1.0 - phase.value, power) * (1.0 - alpha_f);
  }
};

}  // namespace composer::optim
