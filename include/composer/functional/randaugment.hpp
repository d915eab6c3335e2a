#pragma once
/// \file
/// RandAugment (Cubuk et al., "RandAugment: Practical automated data augmentation with a reduced search
/// space", arXiv:1909.13719) on image tensors.

#include <composer/functional/augment_ops.hpp>
#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace composer::functional {

/// Throws std::invalid_argument unless RandAugment's `severity` is in [0, 10] and `depth` >= 0; `who` names the
/// caller in the message. Shared by `randaugment_image`, `randaugment_batch` and the `algorithms::RandAugment`
/// policy. Composer counterpart: the ranges `composer.functional.randaugment_image` and `RandAugment` accept.
inline void check_randaugment_arguments(const std::string& who, int severity, int depth) {
  if (severity < 0 || severity > 10) {
    checks::fail(who + " severity must satisfy 0 <= severity <= 10, got " + std::to_string(severity));
  }
  if (depth < 0) checks::fail(who + " depth must be >= 0, got " + std::to_string(depth));
}

/// Draws one image's RandAugment choices: `depth` operations chosen uniformly (with replacement) from
/// `augmentation_set`, each with its parameter drawn at `severity` (see `augment::sample_op`; shifts are
/// relative to `image_height` × `image_width`). Global torch generator.
/// \throws std::invalid_argument for hyperparameters out of range or an empty set.
[[nodiscard]] inline std::vector<augment::AugmentOp> sample_randaugment_ops(
    int64_t image_height, int64_t image_width, int severity = 9, int depth = 2,
    std::span<const augment::Augmentation> augmentation_set = augment::all_augmentations) {
  check_randaugment_arguments("randaugment_image", severity, depth);
  if (augmentation_set.empty()) detail::fail("randaugment_image augmentation set must not be empty");
  std::vector<augment::AugmentOp> ops;
  ops.reserve(static_cast<std::size_t>(depth));
  for (int i = 0; i < depth; ++i) ops.push_back(augment::sample_op(augmentation_set, severity, image_height, image_width));
  return ops;
}

/// RandAugment with the given operations, the same for every image of a batch: applies `ops` in order.
/// \param img `[C, H, W]` or `[N, C, H, W]`, C = 1 or 3, uint8 or float in [0, 1]; dtype, device and shape are
///            preserved and `img` is not modified.
/// \throws std::invalid_argument for a bad image or parameter.
[[nodiscard]] inline at::Tensor randaugment_image(const at::Tensor& img, std::span<const augment::AugmentOp> ops) {
  augment::impl::check_image(img, "randaugment_image");
  return augment::apply_ops(img, ops);
}

/// RandAugment with a custom augmentation set; see the overload taking a set name.
[[nodiscard]] inline at::Tensor randaugment_image(const at::Tensor& img, int severity, int depth,
                                                  std::span<const augment::Augmentation> augmentation_set) {
  constexpr const char* fn = "randaugment_image";
  augment::impl::check_image(img, fn);
  check_randaugment_arguments(fn, severity, depth);
  if (augmentation_set.empty()) detail::fail("randaugment_image augmentation set must not be empty");
  augment::impl::check_unit_range(img, fn);
  if (img.numel() == 0) return img.clone();
  const int64_t h = img.size(-2);
  const int64_t w = img.size(-1);
  if (img.dim() == 3) return augment::apply_ops(img, sample_randaugment_ops(h, w, severity, depth, augmentation_set));
  std::vector<at::Tensor> out;
  out.reserve(static_cast<std::size_t>(img.size(0)));
  for (int64_t i = 0; i < img.size(0); ++i) {
    out.push_back(augment::apply_ops(img[i], sample_randaugment_ops(h, w, severity, depth, augmentation_set)));
  }
  return at::stack(out);
}

/// RandAugment (Cubuk et al. 2019): applies `depth` operations chosen uniformly with replacement from the set,
/// each at `severity`. Each image of a batch gets its own draws (`sample_randaugment_ops`), from the global
/// torch generator. Composer counterpart: `composer.functional.randaugment_image(img, severity=9, depth=2,
/// augmentation_set=augmentation_sets['all'])`.
/// \param img `[C, H, W]` or `[N, C, H, W]`, C = 1 or 3, uint8 or float in [0, 1]; dtype, device and shape are
///            preserved and `img` is not modified.
/// \param augmentation_set `"all"`, `"safe"` or `"original"` (see `augment::augmentation_set`).
/// \throws std::invalid_argument for a bad image (shape, channels, dtype, float values outside [0, 1]),
///         severity outside [0, 10], depth < 0, or an unknown set.
[[nodiscard]] inline at::Tensor randaugment_image(const at::Tensor& img, int severity = 9, int depth = 2,
                                                  std::string_view augmentation_set = "all") {
  augment::impl::check_image(img, "randaugment_image");
  return randaugment_image(img, severity, depth, augment::augmentation_set(augmentation_set));
}

}  // namespace composer::functional
