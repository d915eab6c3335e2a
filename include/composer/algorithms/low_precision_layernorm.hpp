#pragma once
/// \file
/// composer::algorithms::LowPrecisionLayerNorm — LayerNorms that normalise in the autocast low-precision type.

#include <string>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/common.hpp>
#include <composer/functional/low_precision_layernorm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `LowPrecisionLayerNorm`, with Composer's defaults.
struct LowPrecisionLayerNormOptions {
  /// The event of the surgery: `INIT`, `BEFORE_LOAD` or `AFTER_LOAD`.
  Event apply_at = Event::INIT;
};

/// LowPrecisionLayerNorm: at `apply_at` (`INIT` by default), applies `functional::apply_low_precision_layernorm` to the
/// model with the state's precision and optimizers: under `amp_fp16`/`amp_bf16` every `torch::nn::LayerNorm`
/// becomes a `modules::LPLayerNorm`, which normalises in the autocast type; under `fp32` nothing changes. Logs
/// nothing, as Composer's. Runs after the other algorithms on its event (Composer's pass
/// `sort_low_precision_layernorm_last`). Keeps no checkpoint state: the parameter names do not change, so
/// checkpoints load whichever `apply_at` is used. Composer counterpart:
/// `composer.algorithms.LowPrecisionLayerNorm(apply_at=Event.INIT)`.
class LowPrecisionLayerNorm {
 public:
  /// Surgery once, at the event chosen by `apply_at` (the guard `match` picks it).
  static constexpr EventSet events{Event::INIT, Event::BEFORE_LOAD, Event::AFTER_LOAD};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "LowPrecisionLayerNorm";
  /// Placed after the other algorithms (Composer's `sort_low_precision_layernorm_last` pass), so that layers
  /// other algorithms add at the same event are replaced too.
  static constexpr Placement placement = Placement::last;

  /// LowPrecisionLayerNorm with Composer's defaults.
  LowPrecisionLayerNorm() : LowPrecisionLayerNorm(LowPrecisionLayerNormOptions{}) {}
  /// LowPrecisionLayerNorm applied at `apply_at`.
  /// \throws std::invalid_argument for an event other than INIT, BEFORE_LOAD and AFTER_LOAD.
  explicit LowPrecisionLayerNorm(Event apply_at) : LowPrecisionLayerNorm(LowPrecisionLayerNormOptions{.apply_at = apply_at}) {}
  /// LowPrecisionLayerNorm with the given options: `LowPrecisionLayerNorm({.apply_at = Event::AFTER_LOAD})`.
  /// \throws std::invalid_argument for an event other than INIT, BEFORE_LOAD and AFTER_LOAD.
  explicit LowPrecisionLayerNorm(const LowPrecisionLayerNormOptions& options) : options_(options) {
    if (!events.contains(options_.apply_at))
      functional::detail::fail("LowPrecisionLayerNorm apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD, got " +
                               std::string(to_string(options_.apply_at)));
  }

  /// The settings.
  const LowPrecisionLayerNormOptions& options() const noexcept { return options_; }
  /// What the surgery replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Runs only at `apply_at`.
  bool match(Event event, const State&) const noexcept { return event == options_.apply_at; }

  /// Replaces the layers (under amp precision).
  void apply(Event, State& state, const Logger&) {
    report_ = functional::apply_low_precision_layernorm(state.model.module(), state.precision, state.optimizers);
  }

 private:
  LowPrecisionLayerNormOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
