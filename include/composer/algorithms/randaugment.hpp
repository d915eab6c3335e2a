#pragma once
/// \file
/// composer::algorithms::RandAugment — RandAugment on every training batch.

#include <composer/core/argument_checks.hpp>
#include <composer/core/event.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/augment_ops.hpp>
#include <composer/functional/randaugment.hpp>

#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace composer::algorithms {

/// RandAugment's hyperparameters, for `RandAugment({.severity = 5, .depth = 1})`.
struct RandAugmentOptions {
  int severity = 9;                       ///< 0 to 10 (M in the paper)
  int depth = 2;                          ///< operations per image, >= 0 (N in the paper)
  std::string augmentation_set = "all";  ///< "all", "safe" or "original"
};

/// RandAugment (Cubuk et al. 2019) as a policy: each image of the training batch goes through `depth`
/// operations chosen uniformly with replacement from the set, at `severity`, drawn per image from the global
/// torch generator (see `functional::randaugment_image`).
///
/// Where it runs. Composer inserts RandAugment into the training dataset's PIL transform at `FIT_START`, so it
/// acts on each decoded sample before `ToTensor`/normalisation. Here it acts on each training batch at
/// `AFTER_DATALOADER`, image by image, before any other algorithm handling that event (`Placement::first`);
/// the batch's inputs must therefore be unnormalised images — uint8 `[N, C, H, W]`, or float in [0, 1] —
/// with C = 1 or 3, and a normalisation, if any, belongs in the model's forward or a later policy. Targets
/// are left untouched; evaluation and prediction batches are not augmented.
///
/// Composer counterpart: `composer.algorithms.RandAugment(severity=9, depth=2, augmentation_set='all')`.
class RandAugment {
 public:
  /// Name used in checkpoints and messages.
  static constexpr std::string_view name = "RandAugment";
  /// Runs on each training batch.
  static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER};
  /// Before every other algorithm at `AFTER_DATALOADER`, as a dataset transform would be.
  static constexpr composer::Placement placement = composer::Placement::first;

  /// RandAugment with Composer's arguments and defaults.
  /// \throws std::invalid_argument for severity outside [0, 10], depth < 0 or an unknown augmentation set.
  explicit RandAugment(int severity = 9, int depth = 2, std::string augmentation_set = "all")
      : severity_(severity), depth_(depth), set_name_(std::move(augmentation_set)) {
    functional::check_randaugment_arguments("RandAugment", severity_, depth_);
    set_ = functional::augment::augmentation_set(set_name_);
  }
  /// RandAugment from an options struct.
  explicit RandAugment(const RandAugmentOptions& options)
      : RandAugment(options.severity, options.depth, options.augmentation_set) {}

  /// Replaces `state.batch.inputs` by its RandAugment'd images (same shape, dtype and device).
  /// \throws std::invalid_argument unless the inputs are an image batch `[N, C, H, W]` with C = 1 or 3,
  ///         uint8 or float in [0, 1].
  void apply(composer::Event, composer::State& state) const {
    const at::Tensor& inputs = state.batch.inputs;
    if (!inputs.defined() || inputs.dim() != 4) {
      checks::fail("RandAugment needs a batch of images [N, C, H, W] in state.batch.inputs, got shape " +
                   checks::shape_of(inputs));
    }
    state.batch.inputs = functional::randaugment_image(inputs, severity_, depth_, set_);
  }

  int severity() const noexcept { return severity_; }                          ///< 0..10
  int depth() const noexcept { return depth_; }                                ///< >= 0
  const std::string& augmentation_set() const noexcept { return set_name_; }   ///< the set's name

 private:
  int severity_;
  int depth_;
  std::string set_name_;
  std::span<const functional::augment::Augmentation> set_;
};

}  // namespace composer::algorithms
