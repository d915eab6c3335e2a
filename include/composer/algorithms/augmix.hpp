#pragma once
/// \file
/// composer::algorithms::AugMix — AugMix on every training batch.

#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/augment_ops.hpp>
#include <composer/functional/augmix.hpp>

#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace composer::algorithms {

/// AugMix's hyperparameters, for `AugMix({.severity = 5, .augmentation_set = "safe"})`.
struct AugMixOptions {
  int severity = 3;                       ///< 0 (no augmentation) to 10 (strongest)
  int depth = -1;                         ///< operations per chain; −1 draws 1 to 3 per chain
  int width = 3;                          ///< number of chains
  double alpha = 1.0;                     ///< Dirichlet and Beta pseudocount, > 0
  std::string augmentation_set = "all";  ///< "all", "safe" or "original"
};

/// The AugMix data augmentation (Hendrycks et al. 2020) as a policy: each image of the training batch is
/// replaced by (1 − m)·image + m·Σ wᵢ·chainᵢ(image), with `width` chains of `depth` random operations at
/// `severity`, w ~ Dirichlet(α) and m ~ Beta(α, α), drawn per image from the global torch generator (see
/// `functional::augmix_image`).
///
/// Where it runs. Composer inserts AugMix into the training dataset's PIL transform at `FIT_START`, so it acts
/// on each decoded sample before `ToTensor`/normalisation. Here it acts on each training batch at
/// `AFTER_DATALOADER`, image by image, before any other algorithm handling that event (`Placement::first`);
/// the batch's inputs must therefore be unnormalised images — uint8 `[N, C, H, W]`, or float in [0, 1] —
/// with C = 1 or 3, and a normalisation, if any, belongs in the model's forward or a later policy. Targets
/// are left untouched; evaluation and prediction batches are not augmented.
///
/// Composer counterpart: `composer.algorithms.AugMix(severity=3, depth=-1, width=3, alpha=1.0,
/// augmentation_set='all')`.
class AugMix {
 public:
  /// Name used in checkpoints and messages.
  static constexpr std::string_view name = "AugMix";
  /// Runs on each training batch.
  static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER};
  /// Before every other algorithm at `AFTER_DATALOADER`, as a dataset transform would be.
  static constexpr composer::Placement placement = composer::Placement::first;

  /// AugMix with Composer's arguments and defaults.
  /// \throws std::invalid_argument for severity outside [0, 10], depth other than −1 or >= 1, width < 1,
  ///         α <= 0, or an unknown augmentation set.
  explicit AugMix(int severity = 3, int depth = -1, int width = 3, double alpha = 1.0,
                  std::string augmentation_set = "all")
      : severity_(severity), depth_(depth), width_(width), alpha_(alpha), set_name_(std::move(augmentation_set)) {
    functional::check_augmix_arguments("AugMix", severity_, depth_, width_, alpha_);
    set_ = functional::augment::augmentation_set(set_name_);
  }
  /// AugMix from an options struct.
  explicit AugMix(const AugMixOptions& options)
      : AugMix(options.severity, options.depth, options.width, options.alpha, options.augmentation_set) {}

  /// Replaces `state.batch.inputs` by its AugMix'd images (same shape, dtype and device).
  /// \throws std::invalid_argument unless the inputs are an image batch `[N, C, H, W]` with C = 1 or 3,
  ///         uint8 or float in [0, 1].
  void apply(composer::Event, composer::State& state) const {
    const at::Tensor& inputs = state.batch.inputs;
    if (!inputs.defined() || inputs.dim() != 4) {
      checks::fail("AugMix needs a batch of images [N, C, H, W] in state.batch.inputs, got shape " +
                   checks::shape_of(inputs));
    }
    state.batch.inputs = functional::augmix_image(inputs, severity_, depth_, width_, alpha_, set_);
  }

  int severity() const noexcept { return severity_; }                              ///< 0..10
  int depth() const noexcept { return depth_; }                                    ///< −1 or >= 1
  int width() const noexcept { return width_; }                                    ///< >= 1
  double alpha() const noexcept { return alpha_; }                                 ///< > 0
  const std::string& augmentation_set() const noexcept { return set_name_; }       ///< the set's name

 private:
  int severity_;
  int depth_;
  int width_;
  double alpha_;
  std::string set_name_;
  std::span<const functional::augment::Augmentation> set_;
};

}  // namespace composer::algorithms
