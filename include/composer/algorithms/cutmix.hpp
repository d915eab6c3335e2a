#pragma once
/// \file
/// composer::algorithms::CutMix — pastes a box cut from another sample of the microbatch into every image and
/// mixes the targets by area (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
/// Localizable Features", arXiv:1905.04899).

#include <cmath>
#include <optional>
#include <utility>

#include <ATen/ATen.h>

#include <composer/algorithms/option_checks.hpp>
#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/cutmix.hpp>
#include <composer/kernels/apply_stage.hpp>
#include <composer/kernels/batch_stages.hpp>

namespace composer::algorithms {

/// Settings of `CutMix`, with Composer's defaults.
struct CutMixOptions {
  /// Parameter of the Beta(α, α) distribution of λ, the nominal fraction of each image that is kept; ≥ 0.
  double alpha = 1.0;
  /// Mix the losses of the two target sets instead of the targets (not for segmentation targets).
  bool interpolate_loss = false;
  /// Draw box centres so that every pixel is equally likely to be covered (otherwise: the paper's sampling,
  /// centre uniform over the image).
  bool uniform_sampling = false;
};

/// CutMix: at `BEFORE_FORWARD` draws a permutation π of the microbatch, λ ~ Beta(α, α) and one box of nominal
/// area (1 − λ)·H·W at a random centre (clipped at the borders), and replaces that box of every image by the same
/// box of its partner x[π]. The weight of the original targets is the unmixed area a = 1 − |box|/(H·W) of the
/// clipped box. At `BEFORE_LOSS` the targets become a·onehot(y) + (1 − a)·onehot(y[π]), or, for segmentation
/// targets (more than 2 dimensions, the input's H×W), get the partner's box pasted in; with `interpolate_loss`
/// the targets stay and at `BEFORE_BACKWARD` the loss becomes a·loss + (1 − a)·loss(outputs, y[π]).
/// Composer counterpart: `composer.algorithms.CutMix(alpha=1.0, interpolate_loss=False, uniform_sampling=False)`.
class CutMix {
 public:
  /// The events CutMix can act on; the guard picks `BEFORE_LOSS` or `BEFORE_BACKWARD` by `interpolate_loss`.
  static constexpr EventSet events{Event::BEFORE_FORWARD, Event::BEFORE_LOSS, Event::BEFORE_BACKWARD};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "CutMix";
  /// The per-element description of what CutMix does to the inputs (`kernels/batch_stages.hpp`).
  using stage_type = kernels::stage::CutMix;
  /// The event at which the stage acts on the inputs.
  static constexpr Event stage_event = Event::BEFORE_FORWARD;

  /// CutMix with Composer's defaults (α = 1, targets mixed, the paper's box sampling).
  CutMix() : CutMix(CutMixOptions{}) {}

  /// CutMix with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument for α < 0 or α not finite.
  explicit CutMix(double alpha, bool interpolate_loss = false, bool uniform_sampling = false)
      : CutMix(CutMixOptions{.alpha = alpha, .interpolate_loss = interpolate_loss, .uniform_sampling = uniform_sampling}) {}

  /// CutMix with the given options: `CutMix({.alpha = 0.5, .uniform_sampling = true})`.
  /// \throws std::invalid_argument for α < 0 or α not finite.
  explicit CutMix(const CutMixOptions& options) : options_(options) {
    check_beta_alpha(options_.alpha, "CutMix");
  }

  /// The settings.
  const CutMixOptions& options() const noexcept { return options_; }

  /// π, the permutation of the current microbatch (int64, CPU; undefined before the first one).
  const at::Tensor& indices() const noexcept { return indices_; }
  /// λ as drawn for the current microbatch (before the box was clipped).
  double cutmix_lambda() const noexcept { return cutmix_lambda_; }
  /// The box of the current microbatch: rows [x1, x2) of dim 2, columns [y1, y2) of dim 3.
  const functional::BBox& bbox() const noexcept { return bbox_; }
  /// a = 1 − |box|/(H·W), the weight of the original targets in the current microbatch.
  double adjusted_lambda() const noexcept { return adjusted_lambda_; }
  /// y[π], the targets of the samples the boxes came from.
  const at::Tensor& permuted_target() const noexcept { return permuted_target_; }

  /// Runs on `BEFORE_FORWARD` always, on `BEFORE_LOSS` without `interpolate_loss` and on `BEFORE_BACKWARD` with it.
  bool match(Event event, const State&) const noexcept {
    if (event == Event::BEFORE_LOSS) return !options_.interpolate_loss;
    if (event == Event::BEFORE_BACKWARD) return options_.interpolate_loss;
    return true;
  }

  /// Draws this microbatch's π, λ and box (Composer's order: the permutation, λ, then the box centre) and records
  /// y[π] and the area for the targets or the loss; returns them as the stage, which the eager `BEFORE_FORWARD`
  /// applies and a fused pass takes instead. Composer counterpart: the draws of
  /// `composer.algorithms.CutMix.apply(BEFORE_FORWARD)`.
  /// \throws std::invalid_argument for inputs that are not image batches (N, C, H, W) or a batch-size mismatch.
  stage_type draw(State& state) {
    const at::Tensor& input = state.batch.inputs;
    checks::check_image_batch(input, "CutMix");
    checks::check_same_batch(input, state.batch.targets, "CutMix");
    indices_ = functional::random_permutation(input.size(0));
    cutmix_lambda_ = functional::sample_cutmix_coef(options_.alpha);
    bbox_ = functional::cutmix_rand_bbox(input.size(2), input.size(3), cutmix_lambda_, std::nullopt, std::nullopt,
                                         options_.uniform_sampling);
    adjusted_lambda_ = functional::cutmix_area(input.size(2), input.size(3), bbox_);
    permuted_target_ = state.batch.targets.index_select(0, indices_.to(state.batch.targets.device()));
    return stage_type{bbox_, indices_};
  }

  /// Pastes the boxes (`BEFORE_FORWARD`: the stage of `draw` applied), mixes the targets (`BEFORE_LOSS`) or the loss (`BEFORE_BACKWARD`).
  /// \throws std::invalid_argument for inputs that are not image batches (N, C, H, W), and at `BEFORE_BACKWARD`
  ///         for segmentation targets, whose loss cannot be interpolated.
  void apply(auto event, State& state) {
    if constexpr (event == Event::BEFORE_FORWARD) {
      state.batch.inputs = kernels::apply_stage(draw(state), state.batch.inputs);
    } else if constexpr (event == Event::BEFORE_LOSS) {
      if (is_segmentation(state)) {
        at::Tensor target = state.batch.targets.clone();
        target.slice(-2, bbox_.x1, bbox_.x2)
            .slice(-1, bbox_.y1, bbox_.y2)
            .copy_(permuted_target_.slice(-2, bbox_.x1, bbox_.x2).slice(-1, bbox_.y1, bbox_.y2));
        state.batch.targets = std::move(target);
      } else {
        const at::Tensor target = functional::ensure_targets_one_hot(state.outputs, state.batch.targets);
        const at::Tensor permuted =
          functional::ensure_targets_one_hot(state.outputs, permuted_target_.to(state.batch.targets.device()));
        state.batch.targets = target.mul(adjusted_lambda_).add(permuted.mul(1.0 - adjusted_lambda_));
      }
    } else if constexpr (event == Event::BEFORE_BACKWARD) {
      if (is_segmentation(state))
        checks::fail("CutMix cannot interpolate the loss when the target has the input's height and "
                     "width (a segmentation target); use interpolate_loss=false");
      const at::Tensor permuted_loss = state.model.loss(state.outputs, permuted_target_.to(state.batch.targets.device()));
      state.loss = state.loss.mul(adjusted_lambda_).add(permuted_loss.mul(1.0 - adjusted_lambda_));
    }
  }

 private:
  // A target with more than 2 dimensions whose last two match the input's height and width.
  bool is_segmentation(const State& state) const {
    const at::Tensor& input = state.batch.inputs;
    return permuted_target_.dim() > 2 && input.dim() >= 2 && permuted_target_.size(-2) == input.size(-2) &&
           permuted_target_.size(-1) == input.size(-1);
  }

  CutMixOptions options_;
  at::Tensor indices_;
  double cutmix_lambda_ = 0.0;
  functional::BBox bbox_{0, 0, 0, 0};
  double adjusted_lambda_ = 0.0;
  at::Tensor permuted_target_;
};

}  // namespace composer::algorithms
