#pragma once
/// \file
/// Selective backprop (Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers",
/// arXiv:1910.00762) as free functions: the schedule test and the loss-based subset selection.

#include <composer/functional/common.hpp>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <concepts>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

namespace composer::functional {

/// Whether selective backprop runs on this batch: start ≤ d < end, and either interrupt = 0 or
/// (batch_idx + 1) is not a multiple of `interrupt` (so with interrupt = 2 every second batch is a plain step).
/// Composer counterpart: `composer.functional.should_selective_backprop(current_duration, batch_idx, start=0.5,
/// end=0.9, interrupt=2)`.
/// \param current_duration elapsed fraction of training (Composer passes the elapsed duration in [0, 1)).
/// \param batch_idx        index of the batch within the epoch, ≥ 0.
/// \throws std::invalid_argument for batch_idx < 0 or interrupt < 0.
[[nodiscard]] inline bool should_selective_backprop(double current_duration, int64_t batch_idx, double start = 0.5,
                                                    double end = 0.9, int64_t interrupt = 2) {
  if (batch_idx < 0) detail::fail("should_selective_backprop batch_idx must be >= 0, got " + std::to_string(batch_idx));
  if (interrupt < 0) detail::fail("should_selective_backprop interrupt must be >= 0, got " + std::to_string(interrupt));
  const bool in_interval = current_duration >= start && current_duration < end;
  const bool is_step = interrupt == 0 || (batch_idx + 1) % interrupt != 0;
  return in_interval && is_step;
}

/// Selection probabilities over loss ranks (rank 0 = smallest loss) for a batch of n samples:
/// p_r ∝ ((r + ½)/n)^(1/keep − 1), normalised; float64 on the CPU. With keep = 0.5 this is linear in the rank,
/// with keep = 1 uniform. Composer counterpart: the `percs`/`probs` arrays inside `select_using_loss`.
/// \throws std::invalid_argument for keep outside (0, 1] or n < 0.
[[nodiscard]] inline at::Tensor selective_backprop_rank_probs(int64_t n, double keep) {
  if (!(keep > 0.0 && keep <= 1.0)) detail::fail("select_using_loss keep must be in (0, 1], got " + detail::num(keep));
  if (n < 0) detail::fail("select_using_loss batch size must be >= 0, got " + std::to_string(n));
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor percentiles = at::arange(n, opts).add(0.5).div(static_cast<double>(n));
  const at::Tensor weights = percentiles.pow(1.0 / keep - 1.0);
  return weights.div(weights.sum());
}

/// Chooses int(keep·N) distinct samples, favouring high losses: sorts the losses ascending and draws ranks
/// without replacement with selective_backprop_rank_probs(N, keep) (successive draws, each proportional to the
/// remaining probabilities, from the global torch generator). Returns the chosen sample indices (int64, on the
/// device of `losses`) in draw order.
/// \throws std::invalid_argument for keep outside (0, 1] or losses that are not 1-D.
[[nodiscard]] inline at::Tensor select_indices_by_loss(const at::Tensor& losses, double keep) {
  if (!(keep > 0.0 && keep <= 1.0)) detail::fail("select_using_loss keep must be in (0, 1], got " + detail::num(keep));
  if (!losses.defined() || losses.dim() != 1) {
    detail::fail("select_using_loss losses must be 1-D (one per sample), got shape " + detail::shape_of(losses));
  }
  const int64_t n = losses.size(0);
  const int64_t n_select = detail::py_int(keep * static_cast<double>(n));
  const at::Tensor sorted_idx = at::argsort(losses);
  if (n_select == 0) return sorted_idx.slice(0, 0, 0);
  const at::Tensor ranks = at::multinomial(selective_backprop_rank_probs(n, keep), n_select, /*replacement=*/false);
  return sorted_idx.index_select(0, ranks.to(sorted_idx.device()));
}

/// Scores every sample by its loss, without gradients, and keeps a high-loss subset of int(keep·N) samples
/// (see select_indices_by_loss); returns the kept inputs and targets at full resolution.
/// Composer counterpart: `composer.functional.select_using_loss(input, target, model, loss_fun, keep=0.5,
/// scale_factor=1)`.
///
/// \param model_forward any callable Tensor → Tensor (e.g. a lambda calling a module's forward).
/// \param loss_fun      any callable (outputs, target) → per-sample losses of shape (N), i.e. a loss with
///                      reduction 'none' (Composer checks for a `reduction` keyword; here the result shape is
///                      checked).
/// \param keep          fraction of the batch to keep, in (0, 1].
/// \param scale_factor  in (0, 1]; below 1, the scoring forward pass sees the input downscaled with
///                      linear/bilinear/trilinear interpolation (3-, 4-, 5-D input; align_corners false) to
///                      int(s·size) per spatial dim.
/// \throws std::invalid_argument for keep outside (0, 1], scale_factor outside (0, 1], a non-3/4/5-D input when
///         downscaling, differing batch sizes, or losses that are not one per sample.
template <class ModelForward, class LossFun>
  requires std::invocable<ModelForward&, const at::Tensor&> &&
           std::invocable<LossFun&, std::invoke_result_t<ModelForward&, const at::Tensor&>, const at::Tensor&>
[[nodiscard]] InputTarget select_using_loss(const at::Tensor& input, const at::Tensor& target,
                                            ModelForward&& model_forward, LossFun&& loss_fun, double keep = 0.5,
                                            double scale_factor = 1.0) {
  constexpr const char* fn = "select_using_loss";
  if (!(keep > 0.0 && keep <= 1.0)) detail::fail("select_using_loss keep must be in (0, 1], got " + detail::num(keep));
  if (!(scale_factor > 0.0 && scale_factor <= 1.0)) {
    detail::fail("select_using_loss scale_factor must be in (0, 1], got " + detail::num(scale_factor));
  }
  detail::check_same_batch(input, target, fn);
  if (scale_factor != 1.0 && (input.dim() < 3 || input.dim() > 5)) {
    detail::fail("select_using_loss input must be 3-D, 4-D or 5-D when scale_factor != 1, got shape " +
                 detail::shape_of(input));
  }
  const int64_t n = input.size(0);

  at::Tensor selected;
  {
    at::NoGradGuard no_grad;
    at::Tensor scored_input = input;
    if (scale_factor < 1.0) {
      std::vector<int64_t> size;
      for (int64_t d = 2; d < input.dim(); ++d) {
        size.push_back(detail::py_int(static_cast<double>(input.size(d)) * scale_factor));
        if (size.back() <= 0) {
          detail::fail("select_using_loss scale_factor " + detail::num(scale_factor) + " empties input of shape " +
                       detail::shape_of(input));
        }
      }
      const c10::optional<double> s(scale_factor);
      const at::IntArrayRef out_size(size);
      if (input.dim() == 3) {
        scored_input = at::upsample_linear1d(input, out_size, /*align_corners=*/false, s);
      } else if (input.dim() == 4) {
        scored_input = at::upsample_bilinear2d(input, out_size, /*align_corners=*/false, s, s);
      } else {
        scored_input = at::upsample_trilinear3d(input, out_size, /*align_corners=*/false, s, s, s);
      }
    }
    const auto outputs = model_forward(scored_input);
    const at::Tensor losses = loss_fun(outputs, target);
    if (!losses.defined() || losses.dim() != 1 || losses.size(0) != n) {
      detail::fail("select_using_loss loss_fun must return one loss per sample (reduction 'none'), i.e. shape [" +
                   std::to_string(n) + "], got shape " + detail::shape_of(losses));
    }
    selected = select_indices_by_loss(losses.detach(), keep);
  }
  return InputTarget{input.index_select(0, selected.to(input.device())),
                     target.index_select(0, selected.to(target.device()))};
}

}  // namespace composer::functional
