#pragma once
/// \file
/// Sequence-length warmup (Li et al., "The Stability-Efficiency Dilemma: Investigating Sequence Length Warmup for
/// Training GPT Models", arXiv:2108.06084) as free functions: the schedule of lengths and the cutting of a batch.
/// Composer counterpart: `composer.functional.set_batch_sequence_length` and the schedule of
/// `composer.algorithms.SeqLengthWarmup`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include <composer/core/batch.hpp>
#include <composer/functional/common.hpp>

namespace composer::functional {

/// The sequence length after `elapsed` of `total` units of training (batches, or tokens or samples when the run is
/// measured in those) when the warmup spans the first `duration` of it: with W = int(total·duration) units of
/// warmup, U = (max − min) // step updates and every = W // U, the length is min + step·(elapsed // every), at most
/// `max_seq_length` (so it reaches min + step·U at W and `max_seq_length` once elapsed // every passes
/// (max − min) / step); when the warmup has no room for an update (U = 0 or every = 0, where Composer divides by
/// zero), it is `max_seq_length`. Composer counterpart: the `curr_seq_len` of `SeqLengthWarmup.apply` (in batches).
/// \throws std::invalid_argument for negative counts, duration outside [0, 1], step < 1 or min outside [1, max].
[[nodiscard]] inline std::int64_t seq_length_warmup_length(std::int64_t elapsed, std::int64_t total, double duration,
                                                           std::int64_t min_seq_length, std::int64_t max_seq_length,
                                                           std::int64_t step_size) {
  if (elapsed < 0 || total < 0) detail::fail("seq_length_warmup_length needs non-negative counts");
  if (!(duration >= 0.0 && duration <= 1.0))
    detail::fail("SeqLengthWarmup duration must be in [0, 1], got " + detail::num(duration));
  if (step_size < 1) detail::fail("SeqLengthWarmup step_size must be positive, got " + std::to_string(step_size));
  if (min_seq_length < 1 || min_seq_length > max_seq_length)
    detail::fail("SeqLengthWarmup needs 1 <= min_seq_length <= max_seq_length, got " + std::to_string(min_seq_length) +
                 " and " + std::to_string(max_seq_length));
  const auto warmup = static_cast<std::int64_t>(static_cast<double>(total) * duration);
  const std::int64_t updates = (max_seq_length - min_seq_length) / step_size;
  if (updates == 0 || warmup / updates == 0) return max_seq_length;
  return std::min(max_seq_length, min_seq_length + step_size * (elapsed / (warmup / updates)));
}

/// `batch` with sequences of `length` tokens: unchanged when length ≥ S; with `truncate`, the first `length`
/// tokens of each sequence (inputs and, when shaped like them, targets); otherwise reshaped — the batch's tokens
/// flattened in order, the tail beyond a multiple of `length` dropped, viewed as [−1, length] — so that no token
/// of the kept part is lost. Composer counterpart: `composer.functional.set_batch_sequence_length(batch,
/// curr_seq_len, truncate=True)` (whose `preserve_end_of_sequence` needs an attention mask, which `Batch` lacks).
/// \throws std::invalid_argument for length < 1, inputs that are not [B, S], reshaping targets not shaped like the
///         inputs, or a reshape of a batch with fewer than `length` tokens.
[[nodiscard]] inline Batch set_batch_sequence_length(const Batch& batch, std::int64_t length, bool truncate = true) {
  if (length < 1) detail::fail("set_batch_sequence_length needs a positive length, got " + std::to_string(length));
  if (batch.inputs.dim() != 2)
    detail::fail("set_batch_sequence_length needs inputs of shape [B, S], got " + std::to_string(batch.inputs.dim()) +
                 " dimension(s)");
  const std::int64_t current = batch.inputs.size(1);
  if (length >= current) return batch;
  const bool targets_per_token = batch.targets.defined() && batch.targets.dim() >= 2 &&
                                 batch.targets.size(0) == batch.inputs.size(0) && batch.targets.size(1) == current;
  if (truncate) {
    return Batch{batch.inputs.narrow(1, 0, length).contiguous(),
                 targets_per_token ? batch.targets.narrow(1, 0, length).contiguous() : batch.targets};
  }
  if (!targets_per_token || batch.targets.sizes() != batch.inputs.sizes())
    detail::fail("set_batch_sequence_length with truncate=false needs targets shaped like the inputs");
  const std::int64_t kept = batch.inputs.numel() / length * length;
  if (kept == 0)
    detail::fail("set_batch_sequence_length cannot reshape a batch of " + std::to_string(batch.inputs.numel()) +
                 " tokens into sequences of " + std::to_string(length));
  return Batch{batch.inputs.reshape(-1).narrow(0, 0, kept).view({-1, length}),
               batch.targets.reshape(-1).narrow(0, 0, kept).view({-1, length})};
}

}  // namespace composer::functional
