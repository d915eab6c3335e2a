#pragma once
/// \file
/// Batches on their way from a data loader to the model: checked for matching inputs and targets, and moved to
/// the training device.

#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <composer/core/batch.hpp>

namespace composer {

/// `batch` on `device` (copied without blocking; returned as is when already there). Composer counterpart:
/// `Device.batch_to_device`.
inline Batch to_device(const Batch& batch, const c10::Device& device) {
  if (batch.inputs.device() == device && batch.targets.device() == device) return batch;
  return Batch{batch.inputs.to(device, /*non_blocking=*/true), batch.targets.to(device, /*non_blocking=*/true)};
}

/// Throws `std::invalid_argument` when a batch from the `where` ("training", "evaluation") data loader lacks
/// inputs or targets or has a different number of each. Composer counterpart: none (Composer fails later, in the
/// model or the loss).
inline void check_batch(const Batch& batch, const char* where) {
  if (!batch.inputs.defined() || !batch.targets.defined())
    throw std::invalid_argument(std::string("composer: the ") + where +
                                " data loader yielded a batch without inputs or targets");
  if (batch.inputs.dim() == 0 || batch.targets.dim() == 0 || batch.inputs.size(0) != batch.targets.size(0))
    throw std::invalid_argument(std::string("composer: the ") + where + " data loader yielded " +
                                (batch.inputs.dim() ? std::to_string(batch.inputs.size(0)) : std::string("0-d")) +
                                " inputs but " +
                                (batch.targets.dim() ? std::to_string(batch.targets.size(0)) : std::string("0-d")) +
                                " targets in one batch");
}

}  // namespace composer
