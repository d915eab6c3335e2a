#pragma once
/// \file
/// Label smoothing (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
/// arXiv:1512.00567) as a free function.

#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

namespace composer::functional {

/// Shrinks targets towards the uniform distribution: (1 − s)·onehot(y) + s/C, with C = logits.size(1).
/// Composer counterpart: `composer.functional.smooth_labels(logits, target, smoothing=0.1)`.
///
/// \param logits    (N, C, ...) model outputs (only the shape and dtype are used).
/// \param target    class indices of shape (N, ...) with an integer dtype (negative indices are ignored: their
///                  rows become s/C everywhere, as in Composer), or dense targets with the shape of `logits`.
/// \param smoothing s ∈ [0, 1]; 0 leaves one-hot targets unchanged, 1 gives the uniform distribution.
/// \returns dense targets shaped like `logits`; every row of a one-hot/probability target sums to 1.
///          Dtype: float32 for index targets (double with double logits); floating dense targets keep theirs.
/// \throws std::invalid_argument for s outside [0, 1], logits without a class dimension, differing batch sizes,
///         target shapes that are neither index nor one-hot, non-integer index targets, or an index ≥ C.
[[nodiscard]] inline at::Tensor smooth_labels(const at::Tensor& logits, const at::Tensor& target,
                                              double smoothing = 0.1) {
  constexpr const char* fn = "smooth_labels";
  if (!(smoothing >= 0.0 && smoothing <= 1.0)) {
    detail::fail("smooth_labels smoothing must be in [0, 1], got " + detail::num(smoothing));
  }
  detail::check_tensor(logits, fn, "logits", 2);
  detail::check_same_batch(logits, target, fn);
  const at::Tensor dense = ensure_targets_one_hot(logits, target);
  const double num_classes = static_cast<double>(logits.size(1));
  return dense.mul(1.0 - smoothing).add(smoothing / num_classes);
}

}  // namespace composer::functional
