#pragma once
/// \file
/// composer::algorithms::GhostBatchNorm — batch normalisation over small "ghost" batches (Hoffer et al. 2017,
/// "Train longer, generalize better", arXiv:1705.08741).

#include <cstdint>
#include <string>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/ghost_batchnorm.hpp>
#include <composer/modules/ghost_batchnorm.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `GhostBatchNorm`, with Composer's defaults.
struct GhostBatchNormOptions {
  /// Samples normalised together (the batch is split into chunks of this size).
  std::int64_t ghost_batch_size = 32;
};

/// GhostBatchNorm: at `INIT`, applies `functional::apply_ghost_batchnorm` to the model with the state's optimizers,
/// so that every batch norm layer normalises chunks of `ghost_batch_size` samples separately, then logs the
/// model's count of ghost batch norm layers as hyperparameter `GhostBatchNorm/num_new_modules`. Keeps no
/// checkpoint state: the Trainer runs `INIT` before loading, so a resumed run has the same layers. Composer
/// counterpart: `composer.algorithms.GhostBatchNorm(ghost_batch_size=32)`.
class GhostBatchNorm {
 public:
  /// Surgery once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "GhostBatchNorm";

  /// GhostBatchNorm with Composer's defaults.
  GhostBatchNorm() : GhostBatchNorm(GhostBatchNormOptions{}) {}
  /// GhostBatchNorm with Composer's argument.
  /// \throws std::invalid_argument for ghost_batch_size <= 0.
  explicit GhostBatchNorm(std::int64_t ghost_batch_size)
      : GhostBatchNorm(GhostBatchNormOptions{.ghost_batch_size = ghost_batch_size}) {}
  /// GhostBatchNorm with the given options: `GhostBatchNorm({.ghost_batch_size = 16})`.
  /// \throws std::invalid_argument for ghost_batch_size <= 0.
  explicit GhostBatchNorm(const GhostBatchNormOptions& options) : options_(options) {
    if (options_.ghost_batch_size <= 0)
      checks::fail("GhostBatchNorm ghost_batch_size must be positive, got " +
                   std::to_string(options_.ghost_batch_size));
  }

  /// The settings.
  const GhostBatchNormOptions& options() const noexcept { return options_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// Replaces the batch norm layers and logs the count.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::INIT);
    report_ = functional::apply_ghost_batchnorm(state.model.module(), options_.ghost_batch_size, state.optimizers);
    const auto count = surgery::count_module_instances<modules::GhostBatchNorm1dImpl, modules::GhostBatchNorm2dImpl,
                                                       modules::GhostBatchNorm3dImpl>(state.model.module());
    logger.log_hyperparameters({{"GhostBatchNorm/num_new_modules", std::to_string(count)}});
  }

 private:
  GhostBatchNormOptions options_;
  surgery::SurgeryReport report_;
};

}  // namespace composer::algorithms
