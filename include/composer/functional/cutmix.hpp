#pragma once
/// \file
/// CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features",
/// arXiv:1905.04899) as a free function.

#include <composer/functional/common.hpp>
#include <composer/kernels/stage_types.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

namespace composer::functional {

/// The pasted box, (x1, y1, x2, y2) with x on dim 2 (rows) and y on dim 3 (columns), half-open; defined beside
/// the stages (kernels/stage_types.hpp). Composer counterpart: the `bbox` of `composer.functional.cutmix_batch`.
using kernels::stage::BBox;
/// Throws unless a box lies inside a D2×D3 image (0 <= x1 <= x2 <= D2, 0 <= y1 <= y2 <= D3).
using kernels::stage::check_bbox;

/// Result of cutmix_batch, in Composer's order: `auto [x_mixed, y_perm, area, bbox] = cutmix_batch(x, y);`
struct CutMixResult {
  at::Tensor input_mixed;  ///< x with the box filled from x[π]
  at::Tensor target_perm;  ///< y[π]
  double area;             ///< fraction of each image that is still its own: 1 − |box| / (D2·D3)
  BBox bbox;               ///< the box actually used (after clipping)
};

/// Draws CutMix's λ ~ Beta(α, α) (the nominal fraction of each image that is kept); α = 0 gives 0.
/// Composer counterpart: `composer.algorithms.cutmix.cutmix._gen_cutmix_coef`.
/// \throws std::invalid_argument if α < 0.
[[nodiscard]] inline double sample_cutmix_coef(double alpha) {
  if (!(alpha >= 0.0)) detail::fail("cutmix_batch alpha must be >= 0, got " + detail::num(alpha));
  return sample_beta(alpha);
}

namespace detail {

/// One side of a CutMix box: centre drawn (unless given), then [c − cut//2, c + cut//2) clipped to [0, size].
inline std::pair<int64_t, int64_t> cutmix_side(int64_t size, int64_t cut, std::optional<int64_t> centre,
                                               bool uniform_sampling) {
  int64_t c = 0;
  if (centre) {
    c = *centre;
  } else if (uniform_sampling) {
    c = randint(floor_div(-cut, 2), size + cut / 2);  // Python: randint(-cut // 2, size + cut // 2)
  } else {
    c = randint(0, size);
  }
  const int64_t lo = std::clamp<int64_t>(c - cut / 2, 0, size);
  const int64_t hi = std::clamp<int64_t>(c + cut / 2, 0, size);
  return {lo, hi};
}

inline BBox cutmix_box_from_cuts(int64_t dim2, int64_t dim3, int64_t cut2, int64_t cut3, std::optional<int64_t> cx,
                                 std::optional<int64_t> cy, bool uniform_sampling) {
  const auto [x1, x2] = cutmix_side(dim2, cut2, cx, uniform_sampling);
  const auto [y1, y2] = cutmix_side(dim3, cut3, cy, uniform_sampling);
  return BBox{x1, y1, x2, y2};
}

}  // namespace detail

/// Samples a CutMix box for a D2×D3 image whose nominal kept fraction is λ.
/// Composer counterpart: `composer.algorithms.cutmix.cutmix._rand_bbox(W=D2, H=D3, cutmix_lambda, cx, cy,
/// uniform_sampling)`.
///
/// r = √(1 − λ), cut₂ = int(D2·r), cut₃ = int(D3·r). Centre c₂ ~ U{0, …, D2 − 1} (with `uniform_sampling`:
/// U{⌊−cut₂/2⌋, …, D2 + ⌊cut₂/2⌋ − 1}, so every pixel is equally likely to be covered), likewise c₃; a given
/// `cx`/`cy` is used instead of a draw. Box = [clip(c₂ − ⌊cut₂/2⌋), clip(c₂ + ⌊cut₂/2⌋)) × (the same on dim 3),
/// clipped to the image, so the side is 2·⌊cut/2⌋ before clipping.
/// \throws std::invalid_argument for λ outside [0, 1] or non-positive sizes.
[[nodiscard]] inline BBox cutmix_rand_bbox(int64_t dim2, int64_t dim3, double cutmix_lambda,
                                           std::optional<int64_t> cx = std::nullopt,
                                           std::optional<int64_t> cy = std::nullopt, bool uniform_sampling = false) {
  if (dim2 <= 0 || dim3 <= 0) {
    detail::fail("cutmix_rand_bbox image size must be positive, got " + std::to_string(dim2) + "x" +
                 std::to_string(dim3));
  }
  if (!(cutmix_lambda >= 0.0 && cutmix_lambda <= 1.0)) {
    detail::fail("cutmix_rand_bbox cutmix_lambda must be in [0, 1], got " + detail::num(cutmix_lambda));
  }
  const double ratio = std::sqrt(1.0 - cutmix_lambda);
  const int64_t cut2 = detail::py_int(static_cast<double>(dim2) * ratio);
  const int64_t cut3 = detail::py_int(static_cast<double>(dim3) * ratio);
  return detail::cutmix_box_from_cuts(dim2, dim3, cut2, cut3, cx, cy, uniform_sampling);
}

/// The λ (nominal kept fraction) that Composer's `cutmix_batch` derives from its `length` option for a D2×D3
/// image: the share of the image that a box of int(length·D2) × int(length·D3) pixels would cover,
/// λ = int(length·D3)·int(length·D2) / (D2·D3). Passed on to cutmix_rand_bbox as λ, it sizes the box from its
/// complement, so the side is about √(1 − length²) of the image (length 0: a box the size of the image, clipped
/// where it crosses the borders; length 1: an empty box). This is what Composer's code does; its docstring
/// describes a box of length·D2 × length·D3 instead.
/// Composer counterpart: the `length` branch of `composer.algorithms.cutmix.cutmix.cutmix_batch`.
/// \throws std::invalid_argument for `length` outside [0, 1] or non-positive sizes.
[[nodiscard]] inline double cutmix_length_lambda(int64_t dim2, int64_t dim3, double length) {
  if (dim2 <= 0 || dim3 <= 0) {
    detail::fail("cutmix_length_lambda image size must be positive, got " + std::to_string(dim2) + "x" +
                 std::to_string(dim3));
  }
  if (!(length >= 0.0 && length <= 1.0)) {
    detail::fail("cutmix_length_lambda length must be in [0, 1], got " + detail::num(length));
  }
  const int64_t cut2 = detail::py_int(length * static_cast<double>(dim2));
  const int64_t cut3 = detail::py_int(length * static_cast<double>(dim3));
  // Both products are exact in double, so the quotient is rounded once, as Python's int / int is.
  return static_cast<double>(cut2 * cut3) / static_cast<double>(dim2 * dim3);
}

/// The fraction of a D2×D3 image left unmixed by `bbox`: 1 − (x2 − x1)(y2 − y1) / (D2·D3).
/// Composer counterpart: `composer.algorithms.cutmix.cutmix._adjust_lambda` (λ recomputed from the clipped box).
[[nodiscard]] inline double cutmix_area(int64_t dim2, int64_t dim3, const BBox& bbox) {
  const double box = static_cast<double>((bbox.x2 - bbox.x1) * (bbox.y2 - bbox.y1));
  return 1.0 - box / static_cast<double>(dim2 * dim3);
}

/// The input side of CutMix alone: a copy of the (N, C, D2, D3) batch in which every image holds its partner's
/// pixels inside `box` (rows [x1, x2) of dim 2, columns [y1, y2) of dim 3), π already on the input's device.
/// Composer counterpart: the pasting lines of `composer.functional.cutmix_batch`.
[[nodiscard]] inline at::Tensor paste_partner_box(const at::Tensor& input, const BBox& box, const at::Tensor& perm) {
  at::Tensor out = input.clone();
  if (box.x2 > box.x1 && box.y2 > box.y1) {
    const at::Tensor patch = input.slice(2, box.x1, box.x2).slice(3, box.y1, box.y2).index_select(0, perm);
    out.slice(2, box.x1, box.x2).slice(3, box.y1, box.y2).copy_(patch);
  }
  return out;
}

/// Pastes one box, taken from a permuted copy of the batch, into every image: out[:, :, box] = x[π][:, :, box]
/// and out = x elsewhere. Returns (out, y[π], area, bbox) with area = 1 − |box|/(D2·D3), the weight of the
/// original targets: dense targets become area·onehot(y) + (1 − area)·onehot(y[π]).
/// Composer counterpart: `composer.functional.cutmix_batch(input, target, length=None, alpha=1., bbox=None,
/// indices=None, uniform_sampling=False)`.
///
/// The box, shared by the whole batch, is chosen as follows:
/// * `bbox` given: used as it is (it must lie inside the image);
/// * `length` given: as Composer's code does (not as its docstring says), λ = cutmix_length_lambda(D2, D3, length),
///   the share of a length·D2 × length·D3 box, and then the box of cutmix_rand_bbox(D2, D3, λ): its side is
///   about √(1 − length²) of the image, so length 1 gives an empty box and length 0 a box the size of the image
///   (before clipping); no λ is drawn;
/// * otherwise λ ~ Beta(α, α) and cutmix_rand_bbox(D2, D3, λ, uniform_sampling).
/// Random boxes are clipped at the borders, and `area` is computed from the clipped box.
///
/// \param input   (N, C, D2, D3) batch; dtype and device preserved; not modified.
/// \param target  (N, ...) targets; only permuted.
/// \param indices the permutation π (1-D integer, N entries); random_permutation(N) when absent.
/// \throws std::invalid_argument for non-4-D input, differing batch sizes, both `length` and `bbox`, α < 0,
///         `length` outside [0, 1], a box outside the image, or indices of the wrong shape.
[[nodiscard]] inline CutMixResult cutmix_batch(const at::Tensor& input, const at::Tensor& target,
                                               std::optional<double> length = std::nullopt, double alpha = 1.0,
                                               std::optional<BBox> bbox = std::nullopt,
                                               const std::optional<at::Tensor>& indices = std::nullopt,
                                               bool uniform_sampling = false) {
  constexpr const char* fn = "cutmix_batch";
  detail::check_image_batch(input, fn);
  detail::check_same_batch(input, target, fn);
  if (bbox && length) {
    detail::fail("cutmix_batch cannot take both length and bbox, got length " + detail::num(*length) +
                 " and a bbox");
  }
  if (!(alpha >= 0.0)) detail::fail("cutmix_batch alpha must be >= 0, got " + detail::num(alpha));
  if (length && !(*length >= 0.0 && *length <= 1.0)) {
    detail::fail("cutmix_batch length must be in [0, 1], got " + detail::num(*length));
  }
  const int64_t n = input.size(0);
  const int64_t dim2 = input.size(2);
  const int64_t dim3 = input.size(3);
  if (dim2 == 0 || dim3 == 0) detail::fail("cutmix_batch input must have non-empty images, got shape " + detail::shape_of(input));
  if (bbox) check_bbox(*bbox, dim2, dim3, fn);

  // Draw order follows Composer's CutMix: permutation, then λ, then the box centre (dim 2, then dim 3).
  const at::Tensor perm = indices ? detail::as_indices(*indices, n, input.device(), fn, "indices")
                                  : random_permutation(n).to(input.device());
  BBox box{};
  if (bbox) {
    box = *bbox;
  } else if (length) {
    box = cutmix_rand_bbox(dim2, dim3, cutmix_length_lambda(dim2, dim3, *length), std::nullopt, std::nullopt,
                           uniform_sampling);
  } else {
    box = cutmix_rand_bbox(dim2, dim3, sample_cutmix_coef(alpha), std::nullopt, std::nullopt, uniform_sampling);
  }

  at::Tensor out = paste_partner_box(input, box, perm);
  at::Tensor target_perm = target.index_select(0, perm.to(target.device()));
  return CutMixResult{std::move(out), std::move(target_perm), cutmix_area(dim2, dim3, box), box};
}

/// cutmix_batch with an explicit box and permutation (fully deterministic):
/// `auto [x, y_perm, area, box] = cutmix_batch(x, y, BBox{x1, y1, x2, y2}, indices);`
[[nodiscard]] inline CutMixResult cutmix_batch(const at::Tensor& input, const at::Tensor& target, const BBox& bbox,
                                               const at::Tensor& indices) {
  return cutmix_batch(input, target, std::nullopt, 1.0, bbox, indices, false);
}

}  // namespace composer::functional
