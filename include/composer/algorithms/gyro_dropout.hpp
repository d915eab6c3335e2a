#pragma once
/// \file
/// composer::algorithms::GyroDropout — dropout over a fixed set of pre-selected subnetworks (Lee et al. 2022,
/// "Gyro Dropout: Maximizing Ensemble Effect in Neural Network Training", MLSys 2022).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/functional/gyro_dropout.hpp>
#include <composer/modules/gyro_dropout.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `GyroDropout`, with Composer's defaults.
struct GyroDropoutOptions {
  /// Probability that a pre-selected mask drops a feature, in [0, 1).
  double p = 0.5;
  /// Number of pre-selected masks (subnetworks).
  std::int64_t sigma = 256;
  /// Number of masks trained together in one iteration (must divide the batch size).
  std::int64_t tau = 16;
};

/// GyroDropout: at `FIT_START`, applies `functional::apply_gyro_dropout` to the model with iters_per_epoch the
/// training data loader's length and max_epoch the state's max_duration in epochs (a duration in batches or
/// samples is converted, rounding up), replacing every `torch::nn::Dropout` by a `modules::GyroDropout`. Logs
/// nothing, as Composer's. Its checkpoint state is every gyro dropout layer's training step, schedule and masks;
/// a run resumed from a checkpoint (where the layers are created again at `FIT_START`) continues with the same
/// masks and schedule, so it is bit-identical to an uninterrupted one (Composer warns that its GyroDropout
/// cannot resume correctly). Composer counterpart: `composer.algorithms.GyroDropout(p=0.5, sigma=256, tau=16)`.
class GyroDropout {
 public:
  /// Surgery when training starts, once the data loader's length is known.
  static constexpr EventSet events{Event::FIT_START};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "GyroDropout";

  /// GyroDropout with Composer's defaults.
  GyroDropout() : GyroDropout(GyroDropoutOptions{}) {}
  /// GyroDropout with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit GyroDropout(double p, std::int64_t sigma = 256, std::int64_t tau = 16)
      : GyroDropout(GyroDropoutOptions{.p = p, .sigma = sigma, .tau = tau}) {}
  /// GyroDropout with the given options: `GyroDropout({.sigma = 1024, .tau = 8})`.
  /// \throws std::invalid_argument for p outside [0, 1), or sigma or tau below 1.
  explicit GyroDropout(const GyroDropoutOptions& options) : options_(options) {
    modules::GyroDropoutImpl::check({.iters_per_epoch = options_.sigma,
                                     .max_epoch = 1,
                                     .p = options_.p,
                                     .sigma = options_.sigma,
                                     .tau = options_.tau});
  }

  /// The settings.
  const GyroDropoutOptions& options() const noexcept { return options_; }
  /// What the last surgery replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }
  /// The gyro dropout layers of the model (after `FIT_START`), in tree order.
  const std::vector<std::shared_ptr<modules::GyroDropoutImpl>>& layers() const noexcept { return layers_; }

  /// The number of epochs `state`'s max_duration lasts with `iters_per_epoch` batches per epoch: the count in
  /// epochs; batches and samples are converted, rounding up.
  /// \throws std::logic_error without a max_duration, or one in another unit (or in samples without a known
  ///         batch size).
  static std::int64_t max_epochs(const State& state, std::int64_t iters_per_epoch) {
    const auto& max_duration = state.max_duration();
    if (!max_duration) throw std::logic_error("composer: GyroDropout needs the state's max_duration");
    const std::int64_t count = max_duration->count();
    const auto ceil_div = [](std::int64_t a, std::int64_t b) { return b > 0 ? (a + b - 1) / b : a; };
    switch (max_duration->unit()) {
      case TimeUnit::EPOCH: return count;
      case TimeUnit::BATCH: return ceil_div(count, iters_per_epoch);
      case TimeUnit::SAMPLE:
        if (state.train_batch_size && *state.train_batch_size > 0)
          return ceil_div(count, iters_per_epoch * *state.train_batch_size);
        break;
      default: break;
    }
    throw std::logic_error("composer: GyroDropout cannot convert max_duration " + max_duration->to_string() +
                           " into epochs");
  }

  /// Replaces the dropout layers, and restores their state when a checkpoint was loaded.
  /// \throws std::logic_error without the training data loader's length or a max_duration;
  ///         std::invalid_argument when the run is too short for sigma (iters_per_epoch · max_epoch < sigma).
  void apply(auto event, State& state, const Logger&) {
    static_assert(decltype(event)::value == Event::FIT_START);
    if (!state.dataloader_len || *state.dataloader_len <= 0)
      throw std::logic_error("composer: GyroDropout needs the length of the training data loader");
    const std::int64_t iters_per_epoch = *state.dataloader_len;
    report_ = functional::apply_gyro_dropout(state.model.module(), iters_per_epoch, max_epochs(state, iters_per_epoch),
                                             options_.p, options_.sigma, options_.tau);
    layers_.clear();
    for (auto& found : surgery::find_modules<modules::GyroDropoutImpl>(state.model.module()))
      layers_.push_back(std::move(found.module));
    if (pending_) {
      std::vector<modules::GyroDropoutState> pending = std::move(*pending_);
      pending_.reset();
      restore(pending);
    }
  }

  /// Saves every layer's training step, schedule and masks.
  void save_state(torch::serialize::OutputArchive& archive) const {
    std::vector<modules::GyroDropoutState> states;
    if (!layers_.empty()) {
      for (const auto& layer : layers_) states.push_back(layer->state());
    } else if (pending_) {
      states = *pending_;
    }
    archive.write("layers", at::tensor(std::vector<std::int64_t>{static_cast<std::int64_t>(states.size())}));
    for (std::size_t i = 0; i < states.size(); ++i) {
      const std::string prefix = std::to_string(i) + "/";
      archive.write(prefix + "training_step", at::tensor(std::vector<std::int64_t>{states[i].training_step}));
      archive.write(prefix + "iter_num", at::tensor(std::vector<std::int64_t>{states[i].iter_num}));
      archive.write(prefix + "preselect_masks", states[i].preselect_masks.cpu());
      archive.write(prefix + "selected_masks", states[i].selected_masks.cpu());
    }
  }

  /// Reads the layers' state; it is put into the layers when they exist (at once, or at the next `FIT_START`).
  /// \throws std::runtime_error when the checkpoint holds a different number of layers than the model has.
  void load_state(torch::serialize::InputArchive& archive) {
    at::Tensor count;
    archive.read("layers", count);
    std::vector<modules::GyroDropoutState> states(static_cast<std::size_t>(count.item<std::int64_t>()));
    for (std::size_t i = 0; i < states.size(); ++i) {
      const std::string prefix = std::to_string(i) + "/";
      at::Tensor step, iter_num;
      archive.read(prefix + "training_step", step);
      archive.read(prefix + "iter_num", iter_num);
      archive.read(prefix + "preselect_masks", states[i].preselect_masks);
      archive.read(prefix + "selected_masks", states[i].selected_masks);
      states[i].training_step = step.item<std::int64_t>();
      states[i].iter_num = iter_num.item<std::int64_t>();
    }
    if (layers_.empty())
      pending_ = std::move(states);
    else
      restore(states);
  }

 private:
  void restore(const std::vector<modules::GyroDropoutState>& states) {
    if (states.empty()) return;  // saved before the layers existed: they start fresh
    if (states.size() != layers_.size())
      throw std::runtime_error("composer: the checkpoint holds the state of " + std::to_string(states.size()) +
                               " GyroDropout layer(s), the model has " + std::to_string(layers_.size()));
    for (std::size_t i = 0; i < states.size(); ++i) layers_[i]->set_state(states[i]);
  }

  GyroDropoutOptions options_;
  surgery::SurgeryReport report_;
  std::vector<std::shared_ptr<modules::GyroDropoutImpl>> layers_;
  std::optional<std::vector<modules::GyroDropoutState>> pending_;
};

}  // namespace composer::algorithms
