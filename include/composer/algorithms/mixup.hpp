#pragma once
/// \file
/// composer::algorithms::MixUp — trains on convex combinations of pairs of samples of each microbatch and of
/// their targets (Zhang et al., "mixup: Beyond Empirical Risk Minimization", arXiv:1710.09412).

#include <cmath>
#include <optional>
#include <utility>

#include <ATen/ATen.h>

#include <composer/algorithms/option_checks.hpp>
#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/kernels/apply_stage.hpp>
#include <composer/kernels/batch_stages.hpp>

namespace composer::algorithms {

/// Settings of `MixUp`, with Composer's defaults.
struct MixUpOptions {
  /// Parameter of the Beta(α, α) distribution the mixing coefficient is drawn from, ≥ 0; 0 switches mixing off.
  double alpha = 0.2;
  /// Mix the losses of the two target sets instead of the targets themselves (exact only for losses linear in
  /// the target, such as cross-entropy).
  bool interpolate_loss = false;
};

/// MixUp: at `BEFORE_FORWARD` every sample x of the microbatch becomes (1 − m)·x + m·x[π], with a fresh random
/// permutation π and m = min(λ, 1 − λ), λ ~ Beta(α, α); at `BEFORE_LOSS` the targets become the dense mixture
/// (1 − m)·onehot(y) + m·onehot(y[π]) (left in place afterwards); with `interpolate_loss`, the targets stay and
/// at `BEFORE_BACKWARD` the loss becomes (1 − m)·loss + m·loss(outputs, y[π]) instead.
/// Composer counterpart: `composer.algorithms.MixUp(alpha=0.2, interpolate_loss=False)`.
class MixUp {
 public:
  /// The events MixUp can act on; the guard picks `BEFORE_LOSS` or `BEFORE_BACKWARD` by `interpolate_loss`.
  static constexpr EventSet events{Event::BEFORE_FORWARD, Event::BEFORE_LOSS, Event::BEFORE_BACKWARD};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "MixUp";
  /// The per-element description of what MixUp does to the inputs (`kernels/batch_stages.hpp`).
  using stage_type = kernels::stage::MixUp;
  /// The event at which the stage acts on the inputs.
  static constexpr Event stage_event = Event::BEFORE_FORWARD;

  /// MixUp with Composer's defaults (α = 0.2, targets mixed).
  MixUp() : MixUp(MixUpOptions{}) {}

  /// MixUp with `alpha` and `interpolate_loss`, in Composer's argument order.
  /// \throws std::invalid_argument for α < 0 or α not finite.
  explicit MixUp(double alpha, bool interpolate_loss = false)
      : MixUp(MixUpOptions{.alpha = alpha, .interpolate_loss = interpolate_loss}) {}

  /// MixUp with the given options: `MixUp({.alpha = 1.0, .interpolate_loss = true})`.
  /// \throws std::invalid_argument for α < 0 or α not finite.
  explicit MixUp(const MixUpOptions& options) : options_(options) {
    check_beta_alpha(options_.alpha, "MixUp");
  }

  /// The settings.
  const MixUpOptions& options() const noexcept { return options_; }
  /// Beta(α, α) parameter.
  double alpha() const noexcept { return options_.alpha; }
  /// Whether the loss, not the targets, is interpolated.
  bool interpolate_loss() const noexcept { return options_.interpolate_loss; }

  /// m, the weight of the permuted samples in the current microbatch (0 before the first one).
  double mixing() const noexcept { return mixing_; }
  /// π, the permutation of the current microbatch (int64, CPU; undefined before the first one).
  const at::Tensor& indices() const noexcept { return indices_; }
  /// y[π], the targets of the samples mixed into the current microbatch.
  const at::Tensor& permuted_target() const noexcept { return permuted_target_; }

  /// Runs on `BEFORE_FORWARD` always, on `BEFORE_LOSS` without `interpolate_loss` and on `BEFORE_BACKWARD` with it.
  bool match(Event event, const State&) const noexcept {
    if (event == Event::BEFORE_LOSS) return !options_.interpolate_loss;
    if (event == Event::BEFORE_BACKWARD) return options_.interpolate_loss;
    return true;
  }

  /// Draws this microbatch's m and π (Composer's order: the coefficient, then the permutation) and records y[π]
  /// for the targets or the loss; returns them as the stage, which the eager `BEFORE_FORWARD` applies and a fused
  /// pass takes instead. Composer counterpart: the draws of `composer.algorithms.MixUp.apply(BEFORE_FORWARD)`.
  /// 	hrows std::invalid_argument when inputs and targets differ in batch size.
  stage_type draw(State& state) {
    const at::Tensor& input = state.batch.inputs;
    checks::check_same_batch(input, state.batch.targets, "MixUp");
    mixing_ = functional::sample_mixup_coef(options_.alpha);
    indices_ = functional::random_permutation(input.size(0));
    permuted_target_ = state.batch.targets.index_select(0, indices_.to(state.batch.targets.device()));
    return stage_type{mixing_, indices_};
  }

  /// Mixes the inputs (`BEFORE_FORWARD`: the stage of `draw` applied), the targets (`BEFORE_LOSS`) or the loss
  /// (`BEFORE_BACKWARD`).
  void apply(auto event, State& state) {
    if constexpr (event == Event::BEFORE_FORWARD) {
      state.batch.inputs = kernels::apply_stage(draw(state), state.batch.inputs);
    } else if constexpr (event == Event::BEFORE_LOSS) {
      const at::Tensor target = functional::ensure_targets_one_hot(state.outputs, state.batch.targets);
      const at::Tensor permuted =
          functional::ensure_targets_one_hot(state.outputs, permuted_target_.to(state.batch.targets.device()));
      state.batch.targets = target.mul(1.0 - mixing_).add(permuted.mul(mixing_));
    } else if constexpr (event == Event::BEFORE_BACKWARD) {
      const at::Tensor permuted_loss = state.model.loss(state.outputs, permuted_target_.to(state.batch.targets.device()));
      state.loss = state.loss.mul(1.0 - mixing_).add(permuted_loss.mul(mixing_));
    }
  }

 private:
  MixUpOptions options_;
  double mixing_ = 0.0;
  at::Tensor indices_;
  at::Tensor permuted_target_;
};

}  // namespace composer::algorithms
