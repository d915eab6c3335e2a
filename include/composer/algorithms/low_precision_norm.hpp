#pragma once
/// \file
/// composer::algorithms::LowPrecisionNorm — the policy shared by LowPrecisionLayerNorm and LowPrecisionGroupNorm:
/// one model surgery, at INIT, BEFORE_LOAD or AFTER_LOAD, that makes a kind of norm layer normalise in the autocast
/// low-precision type.

#include <string>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `LowPrecisionLayerNorm` and `LowPrecisionGroupNorm`, with Composer's defaults.
struct LowPrecisionNormOptions {
  /// The event of the surgery: `INIT`, `BEFORE_LOAD` or `AFTER_LOAD`.
  Event apply_at = Event::INIT;
};

/// The surgery policy behind `LowPrecisionLayerNorm` and `LowPrecisionGroupNorm`. `Norm` says which: its
/// `policy_name` (the checkpoint name), its `placement` among the algorithms, and `replace(model, precision,
/// optimizers)`, the functional surgery. At `apply_at` (`INIT` by default) it runs that surgery with the state's
/// precision and optimizers; it logs nothing and keeps no checkpoint state (the parameter names do not change, so
/// checkpoints load whichever `apply_at` is used). Composer counterpart: the shared shape of
/// `composer.algorithms.LowPrecisionLayerNorm` and `LowPrecisionGroupNorm`.
template <class Norm>
class LowPrecisionNorm {
 public:
  /// Surgery once, at the event chosen by `apply_at` (the guard `match` picks it).
  static constexpr EventSet events{Event::INIT, Event::BEFORE_LOAD, Event::AFTER_LOAD};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = Norm::policy_name;
  /// Where the policy sits among the algorithms on its event.
  static constexpr Placement placement = Norm::placement;

  /// The policy with Composer's defaults.
  LowPrecisionNorm() : LowPrecisionNorm(LowPrecisionNormOptions{}) {}
  /// The policy applied at `apply_at`.
  /// \throws std::invalid_argument for an event other than INIT, BEFORE_LOAD and AFTER_LOAD.
  explicit LowPrecisionNorm(Event apply_at) : LowPrecisionNorm(LowPrecisionNormOptions{.apply_at = apply_at}) {}
  /// The policy with the given options: `LowPrecisionLayerNorm({.apply_at = Event::AFTER_LOAD})`.
  /// \throws std::invalid_argument for an event other than INIT, BEFORE_LOAD and AFTER_LOAD.
  explicit LowPrecisionNorm(const LowPrecisionNormOptions& options) : options_(options) {
    if (!events.contains(options_.apply_at))
      checks::fail(std::string(name) + " apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD, got " +
                   std::string(to_string(options_.apply_at)));
  }

  /// The settings.
  const LowPrecisionNormOptions& options() const noexcept { return options_; }
  /// What the surgery replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Runs only at `apply_at`.
  bool match(Event event, const State&) const noexcept { return event == options_.apply_at; }

  /// Replaces the layers (under amp precision).
  void apply(Event, State& state, const Logger&) {
    report_ = Norm::replace(state.model.module(), state.precision, state.optimizers);
  }

 private:
  LowPrecisionNormOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
