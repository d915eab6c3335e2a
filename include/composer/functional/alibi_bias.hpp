#pragma once
/// \file
/// The attention biases of ALiBi (Press et al., "Train Short, Test Long: Attention with Linear Biases Enables Input
/// Length Extrapolation", arXiv:2108.12409): one slope per head and the bias −slope·|i − j| added to the attention
/// scores.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <composer/functional/common.hpp>

namespace composer::functional {

/// The ALiBi slopes of `heads` heads. For a power of two n: 2^(−8/n), 2^(−16/n), …, 2^(−8) (head h gets
/// 2^(−8(h+1)/n)); otherwise the slopes of the largest power of two p below n, followed by every other slope of
/// the 2p set (its 1st, 3rd, …) until there are n. Composer counterpart: `_get_alibi_head_slopes` of
/// `composer.algorithms.alibi`.
/// \throws std::invalid_argument for heads < 1.
[[nodiscard]] inline std::vector<double> alibi_slopes(std::int64_t heads) {
  if (heads < 1) detail::fail("alibi_slopes needs at least one head, got " + std::to_string(heads));
  auto power_of_two_slopes = [](std::int64_t n) {
    std::vector<double> slopes;
    const double start = std::pow(2.0, -8.0 / static_cast<double>(n));
    for (std::int64_t h = 0; h < n; ++h) slopes.push_back(std::pow(start, static_cast<double>(h + 1)));
    return slopes;
  };
  std::int64_t lower = 1;
  while (lower * 2 <= heads) lower *= 2;
  std::vector<double> slopes = power_of_two_slopes(lower);
  if (lower == heads) return slopes;
  const std::vector<double> doubled = power_of_two_slopes(2 * lower);
  for (std::size_t i = 0; static_cast<std::int64_t>(slopes.size()) < heads; i += 2) slopes.push_back(doubled[i]);
  return slopes;
}

/// The ALiBi bias of `heads` heads over `length` positions, [heads, length, length] with
/// bias[h, i, j] = −slope_h·|i − j|, created with `options` (the device and dtype of the scores it is added to).
/// Under a causal mask only j ≤ i counts, where it is −slope_h·(i − j); Composer's GPT-2 form, slope_h·j, differs
/// from it by slope_h·i in each row, which softmax ignores. Composer counterpart: the `alibi` buffer of
/// `composer.algorithms.alibi` (BERT's symmetric form).
/// \throws std::invalid_argument for heads < 1 or length < 1.
[[nodiscard]] inline at::Tensor alibi_bias(std::int64_t heads, std::int64_t length,
                                           const at::TensorOptions& options = at::kFloat) {
  if (length < 1) detail::fail("alibi_bias needs a positive length, got " + std::to_string(length));
  const std::vector<double> slopes = alibi_slopes(heads);
  const at::Tensor positions = at::arange(length, options.dtype(at::kDouble).device(at::kCPU));
  const at::Tensor distance = (positions.unsqueeze(0) - positions.unsqueeze(1)).abs();  // [L, L]
  const at::Tensor slope = at::tensor(slopes, at::kDouble).view({heads, 1, 1});
  return (-slope * distance.unsqueeze(0)).to(at::TensorOptions().device(options.device()).dtype(options.dtype()));
}

}  // namespace composer::functional
