#pragma once
/// \file
/// AugMix (Hendrycks et al., "AugMix: A Simple Data Processing Method to Improve Robustness and Uncertainty",
/// ICLR 2020, arXiv:1912.02781) on image tensors.

#include <composer/functional/augment_ops.hpp>
#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace composer::functional {

/// Every random choice AugMix makes for one image: `width` chains of operations, the chain weights
/// (non-negative, summing to 1) and the weight m of the augmented mixture against the original image.
struct AugMixPlan {
  std::vector<std::vector<augment::AugmentOp>> chains;  ///< the operations of each chain, applied in order
  std::vector<double> chain_weights;                     ///< one weight per chain, Dirichlet(α, …, α)
  double mixing_weight = 0.0;                            ///< m ~ Beta(α, α)
};

/// Throws std::invalid_argument unless AugMix's hyperparameters are in range: `severity` in [0, 10], `depth` -1
/// or >= 1, `width` >= 1 and `alpha` finite and > 0; `who` names the caller in the message. Shared by
/// `augmix_image`, `augmix_batch` and the `algorithms::AugMix` policy. Composer counterpart: the ranges
/// `composer.functional.augmix_image` and `AugMix` accept.
inline void check_augmix_arguments(const std::string& who, int severity, int depth, int width, double alpha) {
  if (severity < 0 || severity > 10) {
    checks::fail(who + " severity must satisfy 0 <= severity <= 10, got " + std::to_string(severity));
  }
  if (depth == 0 || depth < -1) {
    checks::fail(who + " depth must be -1 (a random depth of 1 to 3 per chain) or >= 1, got " +
                 std::to_string(depth));
  }
  if (width < 1) checks::fail(who + " width must be >= 1, got " + std::to_string(width));
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    checks::fail(who + " alpha must be a finite value > 0, got " + checks::num(alpha));
  }
}

namespace detail {

/// Throws unless `plan` has at least one chain, one non-negative weight per chain summing to 1 (within 1e-6)
/// and a mixing weight in [0, 1].
inline void check_augmix_plan(const AugMixPlan& plan) {
  if (plan.chains.empty()) fail("augmix_image plan must have at least one chain");
  if (plan.chain_weights.size() != plan.chains.size()) {
    fail("augmix_image plan must have one weight per chain, got " + std::to_string(plan.chain_weights.size()) +
         " weights for " + std::to_string(plan.chains.size()) + " chains");
  }
  double sum = 0.0;
  for (double w : plan.chain_weights) {
    if (!(w >= 0.0) || !std::isfinite(w)) fail("augmix_image plan chain weights must be finite and >= 0, got " + num(w));
    sum += w;
  }
  if (std::abs(sum - 1.0) > 1e-6) fail("augmix_image plan chain weights must sum to 1, got " + num(sum));
  if (!(plan.mixing_weight >= 0.0 && plan.mixing_weight <= 1.0)) {
    fail("augmix_image plan mixing_weight must be in [0, 1], got " + num(plan.mixing_weight));
  }
}

/// Weights ~ Dirichlet(α, …, α) from normalised Gamma(α) draws; if every draw underflows (tiny α, where the
/// distribution puts almost all its mass on the corners), one chain chosen uniformly gets weight 1.
inline std::vector<double> sample_dirichlet(int width, double alpha) {
  const at::Tensor gammas =
      at::_standard_gamma(at::full({width}, alpha, at::TensorOptions().dtype(at::kDouble))).contiguous();
  const double* g = gammas.data_ptr<double>();
  double sum = 0.0;
  for (int i = 0; i < width; ++i) sum += g[i];
  std::vector<double> weights(static_cast<std::size_t>(width), 0.0);
  if (!(sum > 0.0) || !std::isfinite(sum)) {
    weights[static_cast<std::size_t>(randint(0, width))] = 1.0;
    return weights;
  }
  for (int i = 0; i < width; ++i) weights[static_cast<std::size_t>(i)] = g[i] / sum;
  return weights;
}

/// (1 − m)·image + m·Σ wᵢ·chainᵢ(image), in double; uint8 results are rounded to the nearest level.
inline at::Tensor mix_augmix(const at::Tensor& img, const AugMixPlan& plan) {
  const at::Tensor original = img.to(at::kDouble);
  at::Tensor combined = at::zeros_like(original);
  for (std::size_t i = 0; i < plan.chains.size(); ++i) {
    combined.add_(augment::apply_ops(img, plan.chains[i]).to(at::kDouble).mul_(plan.chain_weights[i]));
  }
  at::Tensor mixed = original * (1.0 - plan.mixing_weight) + combined * plan.mixing_weight;
  if (img.scalar_type() == at::kByte) return mixed.round_().clamp_(0.0, 255.0).to(at::kByte);
  return mixed.to(img.scalar_type());
}

}  // namespace detail

/// Draws one image's AugMix choices in Composer's order: the chain weights w ~ Dirichlet(α·1_width), the mixing
/// weight m ~ Beta(α, α), then for each chain its depth (`depth`, or uniform in {1, 2, 3} when −1) and that many
/// operations chosen uniformly from `augmentation_set` with parameters drawn at `severity` (see
/// `augment::sample_op`; shifts are relative to `image_height` × `image_width`). Global torch generator.
/// \throws std::invalid_argument for hyperparameters out of range or an empty set.
[[nodiscard]] inline AugMixPlan sample_augmix_plan(
    int64_t image_height, int64_t image_width, int severity = 3, int depth = -1, int width = 3, double alpha = 1.0,
    std::span<const augment::Augmentation> augmentation_set = augment::all_augmentations) {
  check_augmix_arguments("augmix_image", severity, depth, width, alpha);
  if (augmentation_set.empty()) detail::fail("augmix_image augmentation set must not be empty");
  AugMixPlan plan;
  plan.chain_weights = detail::sample_dirichlet(width, alpha);
  plan.mixing_weight = sample_beta(alpha);
  plan.chains.resize(static_cast<std::size_t>(width));
  for (auto& chain : plan.chains) {
    const int64_t d = depth > 0 ? depth : detail::randint(1, 4);
    chain.reserve(static_cast<std::size_t>(d));
    for (int64_t k = 0; k < d; ++k) {
      chain.push_back(augment::sample_op(augmentation_set, severity, image_height, image_width));
    }
  }
  return plan;
}

/// AugMix with the given choices, the same for every image of a batch: (1 − m)·image + m·Σ wᵢ·chainᵢ(image),
/// where chainᵢ applies `plan.chains[i]` in order. The result is a convex combination of the image and the
/// chain outputs, pixel by pixel; uint8 results are rounded to the nearest level.
/// \param img `[C, H, W]` or `[N, C, H, W]`, C = 1 or 3, uint8 or float in [0, 1]; dtype, device and shape are
///            preserved and `img` is not modified.
/// \throws std::invalid_argument for a bad image or plan.
[[nodiscard]] inline at::Tensor augmix_image(const at::Tensor& img, const AugMixPlan& plan) {
  augment::impl::check_image(img, "augmix_image");
  detail::check_augmix_plan(plan);
  if (img.numel() == 0) return img.clone();
  return detail::mix_augmix(img, plan);
}

/// AugMix with a custom augmentation set; see the overload taking a set name.
[[nodiscard]] inline at::Tensor augmix_image(const at::Tensor& img, int severity, int depth, int width, double alpha,
                                             std::span<const augment::Augmentation> augmentation_set) {
  constexpr const char* fn = "augmix_image";
  augment::impl::check_image(img, fn);
  check_augmix_arguments(fn, severity, depth, width, alpha);
  if (augmentation_set.empty()) detail::fail("augmix_image augmentation set must not be empty");
  augment::impl::check_unit_range(img, fn);
  if (img.numel() == 0) return img.clone();
  const int64_t h = img.size(-2);
  const int64_t w = img.size(-1);
  if (img.dim() == 3) {
    return detail::mix_augmix(img, sample_augmix_plan(h, w, severity, depth, width, alpha, augmentation_set));
  }
  std::vector<at::Tensor> out;
  out.reserve(static_cast<std::size_t>(img.size(0)));
  for (int64_t i = 0; i < img.size(0); ++i) {
    out.push_back(detail::mix_augmix(img[i], sample_augmix_plan(h, w, severity, depth, width, alpha, augmentation_set)));
  }
  return at::stack(out);
}

/// AugMix (Hendrycks et al. 2020): for each image, `width` chains of `depth` random operations (−1: 1 to 3
/// per chain) at `severity`, mixed with Dirichlet(α) weights, and the mixture blended with the original with a
/// Beta(α, α) weight. Each image of a batch gets its own draws (`sample_augmix_plan`), from the global torch
/// generator. Composer counterpart: `composer.functional.augmix_image(img, severity=3, depth=-1, width=3,
/// alpha=1.0, augmentation_set=augmentation_sets['all'])`.
/// \param img `[C, H, W]` or `[N, C, H, W]`, C = 1 or 3, uint8 or float in [0, 1]; dtype, device and shape are
///            preserved and `img` is not modified.
/// \param augmentation_set `"all"`, `"safe"` or `"original"` (see `augment::augmentation_set`).
/// \throws std::invalid_argument for a bad image (shape, channels, dtype, float values outside [0, 1]),
///         severity outside [0, 10], depth other than −1 or >= 1, width < 1, α <= 0, or an unknown set.
[[nodiscard]] inline at::Tensor augmix_image(const at::Tensor& img, int severity = 3, int depth = -1, int width = 3,
                                             double alpha = 1.0, std::string_view augmentation_set = "all") {
  augment::impl::check_image(img, "augmix_image");
  return augmix_image(img, severity, depth, width, alpha, augment::augmentation_set(augmentation_set));
}

}  // namespace composer::functional
