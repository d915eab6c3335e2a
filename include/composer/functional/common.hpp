#pragma once
/// \file
/// Shared pieces of the functional batch transforms: the (input, target) result pair, argument checks,
/// the random draws every transform uses, and the index-to-one-hot target conversion.
///
/// Randomness. Every random draw here comes from LibTorch's global CPU generator, so `torch::manual_seed(s)`
/// (or `at::manual_seed(s)`) makes a sequence of transforms reproducible. Draws that Composer makes with
/// `torch.randperm` / `torch.randint` (permutations, ColOut rows/columns, crop offsets) use the same generator
/// calls and therefore give the same values as Composer under the same torch seed; draws that Composer makes
/// with NumPy (the Beta mixing coefficient, box and hole centres, the SelectiveBackprop subset) use the torch
/// generator instead and are equal in distribution only. Every transform also has a form that takes these
/// draws explicitly, for tests and for bit-exact comparison with a recorded run.

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace composer::functional {

/// A transformed (input, target) pair. Usable with structured bindings: `auto [x, y] = resize_batch(...)`.
/// Composer counterpart: the `(input, target)` tuples returned by `resize_batch`, `colout_batch` on a pair,
/// and `select_using_loss`.
struct InputTarget {
  at::Tensor input;   ///< the transformed input
  at::Tensor target;  ///< the transformed target, or the given target object itself when it was left alone
};

namespace detail {

// The shared argument checks (core/argument_checks.hpp), under the names the transforms use.
using checks::as_indices;
using checks::check_image_batch;
using checks::check_image_or_batch;
using checks::check_indices;
using checks::check_same_batch;
using checks::check_tensor;
using checks::fail;
using checks::is_index_dtype;
using checks::num;
using checks::shape_of;

/// Python's floor division `a // b` for b > 0 (C++ `/` truncates towards zero instead).
inline int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

/// `int(x)` in Python for a finite double: truncation towards zero.
inline int64_t py_int(double x) { return static_cast<int64_t>(x); }

/// A uniform integer in [low, high) from the global torch generator.
inline int64_t randint(int64_t low, int64_t high) {
  return at::randint(low, high, {1}, at::TensorOptions().dtype(at::kLong)).item<int64_t>();
}

/// The dtype of dense targets built from `logits`: double for double logits, float32 otherwise
/// (float32 for half/bfloat16 logits too, so that smoothed or mixed rows still sum to 1).
inline at::ScalarType dense_target_dtype(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace detail

/// Draws λ ~ Beta(α, α) from the global torch generator; α = 0 gives λ = 0 (Composer's convention, where
/// α = 0 switches the mixing off). Composer counterpart: `np.random.beta(alpha, alpha)` inside
/// `_gen_mixing_coef` (MixUp) and `_gen_cutmix_coef` (CutMix).
///
/// Method: with G₁, G₂ ~ Gamma(α, 1) independent, G₁ / (G₁ + G₂) ~ Beta(α, α). For very small α both gamma
/// draws can underflow to zero; Beta(α, α) then has essentially all its mass at 0 and 1 with equal weight, so
/// a fair coin between 0 and 1 is returned.
/// \throws std::invalid_argument if α < 0 or α is not finite.
[[nodiscard]] inline double sample_beta(double alpha) {
  if (!(alpha >= 0.0) || !std::isfinite(alpha)) {
    detail::fail("sample_beta alpha must be a finite value >= 0, got " + detail::num(alpha));
  }
  if (alpha == 0.0) return 0.0;
  const at::Tensor shape = at::empty({2}, at::TensorOptions().dtype(at::kDouble)).fill_(alpha);
  const at::Tensor g = at::_standard_gamma(shape);
  const double a = g[0].item<double>();
  const double b = g[1].item<double>();
  const double sum = a + b;
  if (!(sum > 0.0)) return detail::randint(0, 2) == 0 ? 0.0 : 1.0;
  return a / sum;
}

/// A random permutation of 0..n-1 (int64, CPU) from the global torch generator.
/// Composer counterpart: `_gen_indices` = `torch.randperm(n)` in MixUp and CutMix (same values for the same seed).
[[nodiscard]] inline at::Tensor random_permutation(int64_t n) {
  if (n < 0) detail::fail("random_permutation n must be >= 0, got " + std::to_string(n));
  return at::randperm(n, at::TensorOptions().dtype(at::kLong));
}

/// Whether `target` holds class indices ("indices") or dense per-class values ("one_hot") relative to `logits`.
/// Composer counterpart: `composer.loss.utils.infer_target_type`: equal shapes → one-hot; `logits.dim() ==
/// target.dim() + 1` → indices.
/// \throws std::invalid_argument when neither holds.
[[nodiscard]] inline bool targets_are_indices(const at::Tensor& logits, const at::Tensor& target) {
  if (!logits.defined() || !target.defined()) detail::fail("targets_are_indices needs defined logits and target");
  if (logits.sizes() == target.sizes()) return false;
  if (logits.dim() == target.dim() + 1) return true;
  detail::fail("cannot infer whether target holds class indices or one-hot rows: target shape " +
               detail::shape_of(target) + ", logits shape " + detail::shape_of(logits) +
               "; expected equal shapes (one-hot) or logits.dim() == target.dim() + 1 (indices)");
}

/// Returns dense (one-hot style) targets with the class dimension at dim 1, like `logits`.
/// Composer counterpart: `composer.loss.utils.ensure_targets_one_hot(input, targets, num_classes)`.
///
/// * Index targets (integer dtype, `logits.dim() == target.dim() + 1`, e.g. (N) or (N, H, W)) become one-hot
///   rows with `num_classes` (default `logits.size(1)`) classes inserted at dim 1. Negative indices are ignored:
///   their rows are all zero, as in Composer. The result dtype is float32 (double for double logits).
/// * Dense targets (same shape as `logits`) are returned as they are when floating point (Composer casts them to
///   float32; here double and half targets keep their dtype), or converted to float32/double when integer.
/// \throws std::invalid_argument for undecidable shapes, non-integer index targets, or an index >= num_classes.
[[nodiscard]] inline at::Tensor ensure_targets_one_hot(const at::Tensor& logits, const at::Tensor& target,
                                                       std::optional<int64_t> num_classes = std::nullopt) {
  const at::ScalarType dense = detail::dense_target_dtype(logits);
  if (!targets_are_indices(logits, target)) {
    return at::isFloatingType(target.scalar_type()) ? target : target.to(dense);
  }
  if (!detail::is_index_dtype(target.scalar_type())) {
    detail::fail("ensure_targets_one_hot index targets must have an integer dtype, got " +
                 std::string(c10::toString(target.scalar_type())));
  }
  if (logits.dim() < 2) {
    detail::fail("ensure_targets_one_hot logits must have a class dimension (dim 1), got shape " +
                 detail::shape_of(logits));
  }
  const int64_t classes = num_classes.value_or(logits.size(1));
  if (classes <= 0) detail::fail("ensure_targets_one_hot num_classes must be positive, got " + std::to_string(classes));
  const at::Tensor idx = target.to(at::kLong);
  if (idx.numel() > 0) {
    const int64_t max_index = idx.max().item<int64_t>();
    if (max_index >= classes) {
      detail::fail("ensure_targets_one_hot num_classes must be greater than the largest target index: " +
                   std::to_string(classes) + " <= " + std::to_string(max_index));
    }
  }
  std::vector<int64_t> shape(idx.sizes().begin(), idx.sizes().end());
  shape.insert(shape.begin() + 1, classes);
  at::Tensor one_hot = at::zeros(shape, target.options().dtype(dense));
  // Scatter 1 into each sample's class slot; samples with a negative index scatter 0 into slot 0 instead.
  const at::Tensor valid = idx.ge(0).unsqueeze(1).to(dense);
  one_hot.scatter_(1, idx.clamp_min(0).unsqueeze(1), valid);
  return one_hot;
}

}  // namespace composer::functional
