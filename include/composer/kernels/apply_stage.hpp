#pragma once
/// \file
/// The eager form of each fusable stage: `apply_stage(stage, input)` applies the stage's per-element description
/// (`batch_stages.hpp`) to a whole batch with ATen operations, one pass per stage, on the input's device.
///
/// A policy with a stage (MixUp, CutMix, CutOut, NormalizeInputs) draws its parameters once (`draw(state)`) and
/// then either hands them to a fused pass, when its Trainer's plan fuses it, or applies them here: the two paths
/// share the draw, so they see the same random numbers and give the same batch (to a few ulp).

#include <string>

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>
#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/stage_types.hpp>

namespace composer::kernels {

/// MixUp's stage on a batch (N, ...): (1 − m)·x + m·x[π]. Integer inputs promote to float32.
/// Composer counterpart: `composer.functional.mixup_batch(input, target, mixing=m, indices=π)[0]`.
/// \throws std::invalid_argument for m outside [0, 1] or indices that are not a 1-D list of N positions.
[[nodiscard]] inline at::Tensor apply_stage(const stage::MixUp& s, const at::Tensor& input) {
  if (!(s.mixing >= 0.0 && s.mixing <= 1.0))
    checks::fail("MixUp mixing must be in [0, 1], got " + checks::num(s.mixing));
  const at::Tensor perm = checks::as_indices(s.indices, input.size(0), input.device(), "MixUp", "indices");
  return functional::mix_with_partners(input, s.mixing, perm);
}

/// CutMix's stage on an (N, C, H, W) batch: inside the box every image takes its partner's pixels.
/// Composer counterpart: `composer.functional.cutmix_batch(input, target, bbox=box, indices=π)[0]`.
/// \throws std::invalid_argument for a non-image batch, a box outside the image or bad indices.
[[nodiscard]] inline at::Tensor apply_stage(const stage::CutMix& s, const at::Tensor& input) {
  checks::check_image_batch(input, "CutMix");
  stage::check_bbox(s.box, input.size(2), input.size(3), "CutMix");
  const at::Tensor perm = checks::as_indices(s.indices, input.size(0), input.device(), "CutMix", "indices");
  return functional::paste_partner_box(input, s.box, perm);
}

/// CutOut's stage on an image (C, H, W) or batch (N, C, H, W): zero inside every hole; the input itself when
/// there are no holes. Composer counterpart: `composer.functional.cutout_batch` with the holes given.
/// \throws std::invalid_argument for an input that is not an image or a hole outside it.
[[nodiscard]] inline at::Tensor apply_stage(const stage::CutOut& s, const at::Tensor& input) {
  if (s.holes.empty()) return input;
  return functional::cutout_batch(input, s.holes);
}

/// Normalize's stage on an (N, C, H, W) batch of uint8 or floating point: (s·x − mean[c]) / stddev[c] computed in
/// float32 (s = 1/255 for uint8, 1 otherwise), then converted to `s.dtype`; the layout (channels-last) is kept.
/// Composer counterpart: torchvision's `Normalize` after `ToTensor`, as in Composer's data pipelines.
/// \throws std::invalid_argument for a batch whose channel count is not the number of means.
[[nodiscard]] inline at::Tensor apply_stage(const stage::Normalize& s, const at::Tensor& input) {
  checks::check_image_batch(input, "Normalize");
  if (input.size(1) != static_cast<int64_t>(s.mean.size()) || s.mean.size() != s.stddev.size())
    checks::fail("Normalize has " + std::to_string(s.mean.size()) + " mean(s) and " +
                             std::to_string(s.stddev.size()) + " std(s) but the batch has " +
                             std::to_string(input.size(1)) + " channels (shape " + checks::shape_of(input) +
                             ")");
  const auto shape = std::vector<int64_t>{1, input.size(1), 1, 1};
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(input.device());
  const at::Tensor mean = at::tensor(s.mean, at::TensorOptions().dtype(at::kDouble)).to(f32).view(shape);
  const at::Tensor stddev = at::tensor(s.stddev, at::TensorOptions().dtype(at::kDouble)).to(f32).view(shape);
  at::Tensor x = input.to(at::kFloat);
  if (input.scalar_type() == at::kByte) x = x.div(255.0);
  return x.sub(mean).div(stddev).to(s.dtype);
}

}  // namespace composer::kernels
