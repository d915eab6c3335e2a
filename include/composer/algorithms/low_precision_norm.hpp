#pragma once
/// \file
/// composer::algorithms::LowPrecisionNorm — the policy shared by LowPrecisionLayerNorm and LowPrecisionGroupNorm:
/// one model surgery, at INIT, BEFORE_LOAD or AFTER_LOAD, that makes a kind of norm layer normalise in the autocast
/// low-precision type. Both policies are defined here, each from a short description of its kind
/// (`LayerNormToLowPrecision`, `GroupNormToLowPrecision`); `low_precision_layernorm.hpp` and
/// `low_precision_groupnorm.hpp` include this.

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/precision.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/low_precision_norm.hpp>
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

/// Settings of `LowPrecisionLayerNorm`, with Composer's defaults.
using LowPrecisionLayerNormOptions = LowPrecisionNormOptions;

/// What `LowPrecisionLayerNorm` is among the `LowPrecisionNorm` policies: its checkpoint name, its placement
/// (after the other algorithms, Composer's `sort_low_precision_layernorm_last` pass, so that layers other
/// algorithms add at the same event are replaced too) and its surgery, `functional::apply_low_precision_layernorm`.
struct LayerNormToLowPrecision {
  /// The name under which checkpoints record the policy.
  static constexpr const char* policy_name = "LowPrecisionLayerNorm";
  /// After the other algorithms on its event.
  static constexpr Placement placement = Placement::last;
  /// The surgery: every `torch::nn::LayerNorm` becomes a `modules::LPLayerNorm` under amp precision.
  static surgery::SurgeryReport replace(torch::nn::Module& model, Precision precision,
                                        const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
    return functional::apply_low_precision_layernorm(model, precision, optimizers);
  }
};

/// LowPrecisionLayerNorm: at `apply_at` (`INIT` by default), applies `functional::apply_low_precision_layernorm` to the
/// model with the state's precision and optimizers: under `amp_fp16`/`amp_bf16` every `torch::nn::LayerNorm`
/// becomes a `modules::LPLayerNorm`, which normalises in the autocast type; under `fp32` nothing changes. Logs
/// nothing, as Composer's. Runs after the other algorithms on its event (Composer's pass
/// `sort_low_precision_layernorm_last`). Keeps no checkpoint state: the parameter names do not change, so
/// checkpoints load whichever `apply_at` is used. Constructed as `LowPrecisionLayerNorm()`,
/// `LowPrecisionLayerNorm(Event::AFTER_LOAD)` or `LowPrecisionLayerNorm({.apply_at = Event::AFTER_LOAD})`; an
/// event other than INIT, BEFORE_LOAD and AFTER_LOAD throws std::invalid_argument. Composer counterpart:
/// `composer.algorithms.LowPrecisionLayerNorm(apply_at=Event.INIT)`.
using LowPrecisionLayerNorm = LowPrecisionNorm<LayerNormToLowPrecision>;

/// Settings of `LowPrecisionGroupNorm`, with Composer's defaults.
using LowPrecisionGroupNormOptions = LowPrecisionNormOptions;

/// What `LowPrecisionGroupNorm` is among the `LowPrecisionNorm` policies: its checkpoint name, its placement (where
/// it is declared; Composer has no ordering pass for it) and its surgery,
/// `functional::apply_low_precision_groupnorm`.
struct GroupNormToLowPrecision {
  /// The name under which checkpoints record the policy.
  static constexpr const char* policy_name = "LowPrecisionGroupNorm";
  /// In declaration order among the algorithms on its event.
  static constexpr Placement placement = Placement::declared;
  /// The surgery: every `torch::nn::GroupNorm` becomes a `modules::LPGroupNorm` under amp precision.
  static surgery::SurgeryReport replace(torch::nn::Module& model, Precision precision,
                                        const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
    return functional::apply_low_precision_groupnorm(model, precision, optimizers);
  }
};

/// LowPrecisionGroupNorm: at `apply_at` (`INIT` by default), applies `functional::apply_low_precision_groupnorm` to the
/// model with the state's precision and optimizers: under `amp_fp16`/`amp_bf16` every `torch::nn::GroupNorm`
/// becomes a `modules::LPGroupNorm`, which normalises in the autocast type; under `fp32` nothing changes. Logs
/// nothing, as Composer's. Keeps no checkpoint state: the parameter names do not change, so checkpoints load
/// whichever `apply_at` is used. Constructed as `LowPrecisionGroupNorm()`, `LowPrecisionGroupNorm(Event::AFTER_LOAD)`
/// or `LowPrecisionGroupNorm({.apply_at = Event::AFTER_LOAD})`; an event other than INIT, BEFORE_LOAD and AFTER_LOAD
/// throws std::invalid_argument. Composer counterpart:
/// `composer.algorithms.LowPrecisionGroupNorm(apply_at=Event.INIT)`.
using LowPrecisionGroupNorm = LowPrecisionNorm<GroupNormToLowPrecision>;

}  // namespace composer::algorithms
