#pragma once
/// \file
/// MixUp (Zhang et al., "mixup: Beyond Empirical Risk Minimization", arXiv:1710.09412) as a free function.

#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

namespace composer::functional {

/// Result of mixup_batch, in Composer's order: `auto [x_mixed, y_perm, mixing] = mixup_batch(x, y);`
struct MixUpResult {
  at::Tensor input_mixed;  ///< (1 − m)·x + m·x[π]
  at::Tensor target_perm;  ///< y[π], the targets of the mixed-in samples (targets are not mixed here)
  double mixing;           ///< m, the weight of the permuted samples
};

/// Draws MixUp's mixing coefficient m = min(λ, 1 − λ) with λ ~ Beta(α, α), so m ∈ [0, 0.5] and the original
/// sample always carries the larger weight; α = 0 gives m = 0.
/// Composer counterpart: `composer.algorithms.mixup.mixup._gen_mixing_coef` (which takes the minimum, although
/// its docstring says maximum).
/// \throws std::invalid_argument if α < 0.
[[nodiscard]] inline double sample_mixup_coef(double alpha) {
  if (!(alpha >= 0.0)) detail::fail("mixup_batch alpha must be >= 0, got " + detail::num(alpha));
  const double lambda = sample_beta(alpha);
  return std::min(lambda, 1.0 - lambda);
}

/// The input side of MixUp alone: (1 − m)·x + m·x[π] for a permutation π already on the input's device (1-D int64,
/// N entries). Composer counterpart: the mixing line of `composer.functional.mixup_batch`.
[[nodiscard]] inline at::Tensor mix_with_partners(const at::Tensor& input, double mixing, const at::Tensor& perm) {
  return input.mul(1.0 - mixing).add(input.index_select(0, perm).mul(mixing));
}

/// Mixes every sample with a partner from the same batch: returns x̃ = (1 − m)·x + m·x[π], y[π] and m.
/// Composer counterpart: `composer.functional.mixup_batch(input, target, mixing=None, alpha=0.2, indices=None)`.
///
/// \param input   tensor of shape (N, ...); dtype and device are preserved (integer inputs promote to float, as
///                in PyTorch's tensor·scalar arithmetic).
/// \param target  tensor of shape (N, ...); only permuted. Turn it into mixed dense targets with
///                (1 − m)·ensure_targets_one_hot(logits, y) + m·ensure_targets_one_hot(logits, y_perm).
/// \param mixing  m, the weight of the permuted copy, in [0, 1]; drawn with sample_mixup_coef(alpha) when absent.
/// \param alpha   Beta(α, α) parameter, α ≥ 0 (checked always, used only when `mixing` is absent).
/// \param indices the permutation π (1-D integer, N entries, any device); random_permutation(N) when absent.
/// \throws std::invalid_argument for α < 0, m outside [0, 1], differing batch sizes, or indices of the wrong shape.
[[nodiscard]] inline MixUpResult mixup_batch(const at::Tensor& input, const at::Tensor& target,
                                             std::optional<double> mixing = std::nullopt, double alpha = 0.2,
                                             const std::optional<at::Tensor>& indices = std::nullopt) {
  constexpr const char* fn = "mixup_batch";
  detail::check_same_batch(input, target, fn);
  if (!(alpha >= 0.0)) detail::fail("mixup_batch alpha must be >= 0, got " + detail::num(alpha));
  if (mixing && !(*mixing >= 0.0 && *mixing <= 1.0)) {
    detail::fail("mixup_batch mixing must be in [0, 1], got " + detail::num(*mixing));
  }
  const int64_t n = input.size(0);
  at::Tensor perm;
  if (indices) perm = detail::as_indices(*indices, n, input.device(), fn, "indices");
  // Draw order follows Composer's MixUp: the coefficient first, then the permutation.
  const double m = mixing ? *mixing : sample_mixup_coef(alpha);
  if (!indices) perm = random_permutation(n).to(input.device());

  const at::Tensor target_perm = target.index_select(0, perm.to(target.device()));
  return MixUpResult{mix_with_partners(input, m, perm), target_perm, m};
}

/// mixup_batch with an explicit mixing coefficient and permutation (fully deterministic):
/// `auto [x, y_perm, mixing] = mixup_batch(x, y, mixing, indices);`
[[nodiscard]] inline MixUpResult mixup_batch(const at::Tensor& input, const at::Tensor& target, double mixing,
                                             const at::Tensor& indices) {
  return mixup_batch(input, target, std::optional<double>(mixing), 0.2, std::optional<at::Tensor>(indices));
}

}  // namespace composer::functional
