#pragma once
/// \file
/// composer::Batch — the (inputs, targets) pair a training step works on.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace composer {

/// One batch of training data: the model's inputs and the targets of the loss.
/// Composer counterpart: `State.batch` for the common `(input, target)` tuple batch; algorithms read and write
/// it through `state.batch.inputs` / `state.batch.targets` where Composer uses `batch_get_item` / `batch_set_item`.
struct Batch {
  at::Tensor inputs;   ///< model inputs, e.g. images of shape [N, C, H, W]
  at::Tensor targets;  ///< class indices of shape [N] or soft targets of shape [N, num_classes]
};

/// The tokens of a batch as the Trainer counts them (`Timestamp::token`, durations and intervals in `tok`): every
/// element of `inputs` when they are token ids (an integer tensor of shape [N, S, ...]), otherwise 0. Counted as
/// the data loader yields the batch, before any method reshapes or truncates it, as Composer counts. Composer
/// counterpart: `DataSpec.get_num_tokens_in_batch` (which counts the elements of `input_ids`).
inline std::int64_t tokens_in_batch(const Batch& batch) {
  const at::Tensor& inputs = batch.inputs;
  if (!inputs.defined() || inputs.dim() < 2 || at::isFloatingType(inputs.scalar_type()) ||
      at::isComplexType(inputs.scalar_type()) || inputs.scalar_type() == at::kBool)
    return 0;
  return inputs.numel();
}

}  // namespace composer
