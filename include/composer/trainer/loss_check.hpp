#pragma once
/// \file
/// Stopping on a NaN or infinite training loss before its update is applied.

#include <cmath>
#include <stdexcept>
#include <string>

#include <composer/core/timestamp.hpp>

namespace composer {

/// Thrown when the training loss is NaN or infinite; the message names the step, and no parameter was
/// updated with it.
struct NonFiniteLossError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Throws `NonFiniteLossError` when `loss`, the loss of the batch after `timestamp`, is NaN or infinite, naming
/// the step, the epoch and the batch in the epoch. Composer counterpart: none (Composer trains on).
inline void check_finite_loss(double loss, const Timestamp& timestamp) {
  if (std::isfinite(loss)) return;
  throw NonFiniteLossError("composer: the training loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                           " at step " + std::to_string(timestamp.batch().count() + 1) + " (epoch " +
                           std::to_string(timestamp.epoch().count()) + ", batch " +
                           std::to_string(timestamp.batch_in_epoch().count()) +
                           " of the epoch, counting from 0); this step's update was not applied");
}

}  // namespace composer
