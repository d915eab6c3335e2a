#pragma once
/// \file
/// composer::Batch — the (inputs, targets) pair a training step works on.

#include <ATen/core/Tensor.h>

namespace composer {

/// One batch of training data: the model's inputs and the targets of the loss.
/// Composer counterpart: `State.batch` for the common `(input, target)` tuple batch; algorithms read and write
/// it through `state.batch.inputs` / `state.batch.targets` where Composer uses `batch_get_item` / `batch_set_item`.
struct Batch {
  at::Tensor inputs;   ///< model inputs, e.g. images of shape [N, C, H, W]
  at::Tensor targets;  ///< class indices of shape [N] or soft targets of shape [N, num_classes]
};

}  // namespace composer
