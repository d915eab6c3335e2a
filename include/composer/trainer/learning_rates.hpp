#pragma once
/// \file
/// Learning-rate schedules in the trainer: the base learning rates the schedulers multiply, and applying the
/// schedulers' product to every parameter group.

#include <memory>
#include <vector>

#include <torch/optim/optimizer.h>

#include <composer/core/state.hpp>

namespace composer {

/// The learning rate of every parameter group of `optimizers`, in order: the bases the schedulers multiply.
/// Composer counterpart: the `initial_lr` that PyTorch's `LambdaLR` (what Composer compiles its schedulers into)
/// records per group.
inline std::vector<double> base_learning_rates(const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
  std::vector<double> rates;
  for (const auto& optimizer : optimizers)
    for (const auto& group : optimizer->param_groups()) rates.push_back(group.options().get_lr());
  return rates;
}

/// Sets every parameter group's learning rate to its base times the product of the state's schedulers (each
/// called with `scale_schedule_ratio`), before every batch or, when `every_batch` is false, at the first batch
/// of each epoch only; does nothing without schedulers. Composer counterpart: `scheduler.step()` in
/// `Trainer._train_loop` with `step_schedulers_every_batch`.
inline void apply_schedulers(State& state, const std::vector<double>& base_learning_rates, bool every_batch,
                             double scale_schedule_ratio) {
  if (state.schedulers.empty()) return;
  if (!every_batch && state.timestamp.batch_in_epoch().count() != 0) return;
  double multiplier = 1.0;
  for (const auto& scheduler : state.schedulers) multiplier *= scheduler(state, scale_schedule_ratio);
  std::size_t index = 0;
  for (auto& optimizer : state.optimizers)
    for (auto& group : optimizer->param_groups()) group.options().set_lr(base_learning_rates[index++] * multiplier);
}

}  // namespace composer
