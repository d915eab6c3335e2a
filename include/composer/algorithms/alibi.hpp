#pragma once
/// \file
/// composer::algorithms::Alibi — attention with linear biases in place of position embeddings, trained on shorter
/// sequences than it can run on (Press et al. 2021, "Train Short, Test Long", arXiv:2108.12409).

#include <cstdint>
#include <string>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/alibi.hpp>
#include <composer/modules/alibi_attention.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `Alibi`, with Composer's defaults.
struct AlibiOptions {
  /// The longest sequence the model will run on after the surgery (evaluation may use longer sequences than
  /// training). Composer requires it; here it defaults to nothing useful and must be set (> 0).
  std::int64_t max_sequence_length = 0;
  /// Training batches [B, S] are reshaped to [B/scaling, S·scaling] at AFTER_DATALOADER; 1 keeps them. In (0, 1].
  double train_sequence_length_scaling = 0.25;
};

/// Alibi: at `INIT`, applies `functional::apply_alibi` (position embeddings removed, attention biased by
/// −slope_h·(i − j)) with the state's optimizers and logs the count of ALiBi attention modules as hyperparameter
/// `alibi/num_alibi_attention`; at `AFTER_DATALOADER`, when `train_sequence_length_scaling` ≠ 1, reshapes the
/// training batch into more, shorter sequences (`functional::scale_sequence_length`). Keeps no checkpoint state (the
/// Trainer runs `INIT` before loading: Composer's `required_on_load`). Composer counterpart:
/// `composer.algorithms.Alibi(max_sequence_length, train_sequence_length_scaling=0.25)`.
class Alibi {
 public:
  /// Surgery at `INIT`; batch reshaping at `AFTER_DATALOADER`.
  static constexpr EventSet events{Event::INIT, Event::AFTER_DATALOADER};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "Alibi";

  /// Alibi with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit Alibi(std::int64_t max_sequence_length, double train_sequence_length_scaling = 0.25)
      : Alibi(AlibiOptions{.max_sequence_length = max_sequence_length,
                           .train_sequence_length_scaling = train_sequence_length_scaling}) {}
  /// Alibi with the given options: `Alibi({.max_sequence_length = 256, .train_sequence_length_scaling = 1})`.
  /// \throws std::invalid_argument for max_sequence_length < 1 or a scaling outside (0, 1].
  explicit Alibi(const AlibiOptions& options) : options_(options) {
    if (options_.max_sequence_length < 1)
      checks::fail("Alibi max_sequence_length must be positive, got " + std::to_string(options_.max_sequence_length));
    const double s = options_.train_sequence_length_scaling;
    if (!(s > 0.0 && s <= 1.0))
      checks::fail("Alibi train_sequence_length_scaling must be in (0, 1], got " + checks::num(s));
  }

  /// The settings.
  const AlibiOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// `INIT` always; `AFTER_DATALOADER` when the scaling is not 1.
  bool match(Event event, const State&) const noexcept {
    return event == Event::INIT || (event == Event::AFTER_DATALOADER && options_.train_sequence_length_scaling != 1.0);
  }

  /// The surgery (`INIT`) or the reshaping (`AFTER_DATALOADER`).
  void apply(auto event, State& state, const Logger& logger) {
    if constexpr (event == Event::INIT) {
      report_ = functional::apply_alibi(state.model.module(), options_.max_sequence_length, state.optimizers);
      const auto layers = surgery::count_module_instances<modules::AlibiCausalSelfAttentionImpl>(state.model.module());
      logger.log_hyperparameters({{"alibi/num_alibi_attention", std::to_string(layers)}});
    } else if constexpr (event == Event::AFTER_DATALOADER) {
      state.batch = functional::scale_sequence_length(state.batch, options_.train_sequence_length_scaling);
    }
  }

 private:
  AlibiOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
