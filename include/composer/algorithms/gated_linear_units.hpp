#pragma once
/// \file
/// composer::algorithms::GatedLinearUnits — a transformer's MLPs replaced by gated linear units (Shazeer 2020,
/// "GLU Variants Improve Transformer", arXiv:2002.05202).

#include <optional>
#include <string>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/gated_linear_units.hpp>
#include <composer/models/gpt.hpp>
#include <composer/modules/gated_linear_units.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `GatedLinearUnits`, with Composer's defaults.
struct GatedLinearUnitsOptions {
  /// The gate's activation; unset: each MLP's own (Composer: the model's `hidden_act`).
  std::optional<models::Activation> act_fn;
  /// A bias on the gated layer (Composer and the paper: none).
  bool gated_layer_bias = false;
  /// A bias on the non-gated layer (Composer and the paper: none).
  bool non_gated_layer_bias = false;
  /// Shrink the hidden width to ⌊2/3·d_ff⌉ (a multiple of 8) so that the gated unit has about the MLP's parameters:
  /// the iso-parameter setting of Composer's documentation (Composer's surgery itself keeps d_ff). Off by default.
  bool match_parameter_count = false;
};

/// GatedLinearUnits: at `INIT`, applies `functional::apply_gated_linear_units` to the model with the state's
/// optimizers, then logs the model's count of `GatedLinearUnit` modules as hyperparameter
/// `gated_linear_units/num_gated_linear_units`. Keeps no checkpoint state: the Trainer runs `INIT` before loading,
/// so a checkpoint of a gated model loads into a Trainer with this policy (Composer's `required_on_load`).
/// Composer counterpart: `composer.algorithms.GatedLinearUnits(act_fn=None, gated_layer_bias=False,
/// non_gated_layer_bias=False)`.
class GatedLinearUnits {
 public:
  /// Surgery once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "GatedLinearUnits";

  /// GatedLinearUnits with Composer's defaults.
  GatedLinearUnits() : GatedLinearUnits(GatedLinearUnitsOptions{}) {}
  /// GatedLinearUnits with the given options: `GatedLinearUnits({.act_fn = models::Activation::relu})`.
  explicit GatedLinearUnits(const GatedLinearUnitsOptions& options) : options_(options) {}

  /// The settings.
  const GatedLinearUnitsOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Replaces the MLPs and logs the count of gated units.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::INIT);
    report_ = functional::apply_gated_linear_units(state.model.module(), state.optimizers, options_.act_fn,
                                                   options_.gated_layer_bias, options_.non_gated_layer_bias,
                                                   options_.match_parameter_count);
    const auto units = surgery::count_module_instances<modules::GatedLinearUnitImpl>(state.model.module());
    logger.log_hyperparameters({{"gated_linear_units/num_gated_linear_units", std::to_string(units)}});
  }

 private:
  GatedLinearUnitsOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
