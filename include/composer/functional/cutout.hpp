#pragma once
/// \file
/// CutOut (DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with Cutout",
/// arXiv:1708.04552) as a free function.

#include <composer/functional/common.hpp>
#include <composer/kernels/stage_types.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <vector>

namespace composer::functional {

/// One rectangular hole, rows [y1, y2) and columns [x1, x2) half-open; defined beside the stages
/// (kernels/stage_types.hpp). Composer counterpart: one square of CutOut's mask.
using kernels::stage::CutoutHole;
/// Throws unless a hole lies inside an H×W image (0 <= y1 <= y2 <= H, 0 <= x1 <= x2 <= W).
using kernels::stage::check_hole;

/// Side of the square hole in pixels: int(min(H, W)·length). Composer counterpart: the `length` rescaling at the
/// top of `cutout_batch`.
/// \throws std::invalid_argument for `length` outside (0, 1].
[[nodiscard]] inline int64_t cutout_length_pixels(int64_t height, int64_t width, double length) {
  if (!(length > 0.0 && length <= 1.0)) detail::fail("cutout_batch length must be in (0, 1], got " + detail::num(length));
  return detail::py_int(static_cast<double>(std::min(height, width)) * length);
}

/// The hole Composer cuts around centre (y, x) with side `length_px` in an H×W image:
/// rows [clip(y − ⌊L/2⌋), clip(y + ⌊L/2⌋)) × columns [clip(x − ⌊L/2⌋), clip(x + ⌊L/2⌋)), clipped to the image,
/// so an odd L gives a side of L − 1 and L = 1 gives an empty hole.
/// Composer counterpart: `composer.algorithms.cutout.cutout._generate_mask(mask, width, height, x, y, cutout_length)`.
[[nodiscard]] inline CutoutHole cutout_hole(int64_t height, int64_t width, int64_t y, int64_t x, int64_t length_px) {
  if (length_px < 0) detail::fail("cutout_hole length_px must be >= 0, got " + std::to_string(length_px));
  const int64_t half = length_px / 2;
  return CutoutHole{std::clamp<int64_t>(y - half, 0, height), std::clamp<int64_t>(x - half, 0, width),
                    std::clamp<int64_t>(y + half, 0, height), std::clamp<int64_t>(x + half, 0, width)};
}

/// Draws `num_holes` hole centres as Composer does (per hole: y, then x) and returns the clipped holes.
/// Centres are uniform over the image, or with `uniform_sampling` uniform over
/// {⌊−L/2⌋, …, H + ⌊L/2⌋ − 1} × {⌊−L/2⌋, …, W + ⌊L/2⌋ − 1} so that every pixel is equally likely to be cut.
/// \throws std::invalid_argument for num_holes < 0, length_px < 0 or an empty image.
[[nodiscard]] inline std::vector<CutoutHole> sample_cutout_holes(int64_t height, int64_t width, int64_t num_holes,
                                                                 int64_t length_px, bool uniform_sampling = false) {
  if (num_holes < 0) detail::fail("cutout_batch num_holes must be >= 0, got " + std::to_string(num_holes));
  if (length_px < 0) detail::fail("cutout_batch length_px must be >= 0, got " + std::to_string(length_px));
  if (height <= 0 || width <= 0) {
    detail::fail("cutout_batch image size must be positive, got " + std::to_string(height) + "x" +
                 std::to_string(width));
  }
  std::vector<CutoutHole> holes;
  holes.reserve(static_cast<size_t>(num_holes));
  for (int64_t i = 0; i < num_holes; ++i) {
    int64_t y = 0;
    int64_t x = 0;
    if (uniform_sampling) {
      const int64_t low = detail::floor_div(-length_px, 2);
      y = detail::randint(low, height + length_px / 2);
      x = detail::randint(low, width + length_px / 2);
    } else {
      y = detail::randint(0, height);
      x = detail::randint(0, width);
    }
    holes.push_back(cutout_hole(height, width, y, x, length_px));
  }
  return holes;
}

/// Zeroes the given holes in every image and channel of `input` ((C, H, W) or (N, C, H, W)); returns a new
/// tensor of the same shape, dtype and device. Holes are written as +0 (a fill, not a multiplication by a mask).
/// \throws std::invalid_argument for a non-image input or a hole outside the image.
[[nodiscard]] inline at::Tensor cutout_batch(const at::Tensor& input, const std::vector<CutoutHole>& holes) {
  constexpr const char* fn = "cutout_batch";
  detail::check_image_or_batch(input, fn);
  const int64_t h = input.size(-2);
  const int64_t w = input.size(-1);
  for (const CutoutHole& hole : holes) check_hole(hole, h, w, fn);
  at::Tensor out = input.clone();
  for (const CutoutHole& hole : holes) {
    if (hole.y2 > hole.y1 && hole.x2 > hole.x1) out.slice(-2, hole.y1, hole.y2).slice(-1, hole.x1, hole.x2).zero_();
  }
  return out;
}

/// Cuts `num_holes` square holes of side int(min(H, W)·length), the same holes for every image and channel.
/// Composer counterpart: `composer.functional.cutout_batch(input, num_holes=1, length=0.5, uniform_sampling=False)`.
/// Equivalent to cutout_batch(input, sample_cutout_holes(H, W, num_holes, cutout_length_pixels(H, W, length),
/// uniform_sampling)).
/// \param input (C, H, W) image or (N, C, H, W) batch; dtype and device preserved; not modified.
/// \throws std::invalid_argument for a non-image input, num_holes < 0 or length outside (0, 1].
[[nodiscard]] inline at::Tensor cutout_batch(const at::Tensor& input, int64_t num_holes = 1, double length = 0.5,
                                             bool uniform_sampling = false) {
  detail::check_image_or_batch(input, "cutout_batch");
  const int64_t h = input.size(-2);
  const int64_t w = input.size(-1);
  if (num_holes < 0) detail::fail("cutout_batch num_holes must be >= 0, got " + std::to_string(num_holes));
  const int64_t length_px = cutout_length_pixels(h, w, length);
  if (num_holes == 0 || h == 0 || w == 0) return input.clone();
  return cutout_batch(input, sample_cutout_holes(h, w, num_holes, length_px, uniform_sampling));
}

}  // namespace composer::functional
