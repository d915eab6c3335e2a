#pragma once
/// \file
/// composer::algorithms::LowPrecisionGroupNorm — GroupNorms that normalise in the autocast low-precision type.

#include <string>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/common.hpp>
#include <composer/functional/low_precision_groupnorm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `LowPrecisionGroupNorm`, with Composer's defaults.
struct LowPrecisionGroupNormOptions {
  /// The event of the surgery: `INIT`, `BEFORE_LOAD` or `AFTER_LOAD`.
  Event apply_at = Event::INIT;
};

/// LowPrecisionGroupNorm: at `apply_at` (`INIT` by default), applies `functional::apply_low_precision_groupnorm` to the
/// model with the state's precision and optimizers: under `amp_fp16`/`amp_bf16` every `torch::nn::GroupNorm`
/// becomes a `modules::LPGroupNorm`, which normalises in the autocast type; under `fp32` nothing changes. Logs
/// nothing, as Composer's. Keeps no checkpoint state: the parameter names do not change, so
/// checkpoints load whichever `apply_at` is used. Composer counterpart:
/// `composer.algorithms.LowPrecisionGroupNorm(apply_at=Event.INIT)`.
class LowPrecisionGroupNorm {
 public:
  /// Surgery once, at the event chosen by `apply_at` (the guard `match` picks it).
  static constexpr EventSet events{Event::INIT, Event::BEFORE_LOAD, Event::AFTER_LOAD};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "LowPrecisionGroupNorm";

  /// LowPrecisionGroupNorm with Composer's defaults.
  LowPrecisionGroupNorm() : LowPrecisionGroupNorm(LowPrecisionGroupNormOptions{}) {}
  /// LowPrecisionGroupNorm applied at `apply_at`.
  /// \throws std::invalid_argument for an event other than INIT, BEFORE_LOAD and AFTER_LOAD.
  explicit LowPrecisionGroupNorm(Event apply_at) : LowPrecisionGroupNorm(LowPrecisionGroupNormOptions{.apply_at = apply_at}) {}
  /// LowPrecisionGroupNorm with the given options: `LowPrecisionGroupNorm({.apply_at = Event::AFTER_LOAD})`.
  /// \throws std::invalid_argument for an event other than INIT, BEFORE_LOAD and AFTER_LOAD.
  explicit LowPrecisionGroupNorm(const LowPrecisionGroupNormOptions& options) : options_(options) {
    if (!events.contains(options_.apply_at))
      functional::detail::fail("LowPrecisionGroupNorm apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD, got " +
                               std::string(to_string(options_.apply_at)));
  }

  /// The settings.
  const LowPrecisionGroupNormOptions& options() const noexcept { return options_; }
  /// What the surgery replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Runs only at `apply_at`.
  bool match(Event event, const State&) const noexcept { return event == options_.apply_at; }

  /// Replaces the layers (under amp precision).
  void apply(Event, State& state, const Logger&) {
    report_ = functional::apply_low_precision_groupnorm(state.model.module(), state.precision, state.optimizers);
  }

 private:
  LowPrecisionGroupNormOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
