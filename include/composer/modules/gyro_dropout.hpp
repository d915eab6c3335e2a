#pragma once
/// \file
/// Gyro dropout (Lee et al. 2022, "Gyro Dropout: Maximizing Ensemble Effect in Neural Network Training",
/// MLSys 2022): dropout restricted to a fixed set of pre-selected masks (subnetworks), a few of which are trained
/// at a time. Composer counterpart: `composer.algorithms.gyro_dropout.GyroDropoutLayer`.

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace composer::modules {

/// Settings of `GyroDropout`, with the defaults of Composer's algorithm (`iters_per_epoch` and `max_epoch`
/// describe the training run and have no default there; 1 here).
struct GyroDropoutOptions {
  std::int64_t iters_per_epoch = 1;  ///< training iterations (batches) per epoch
  std::int64_t max_epoch = 1;        ///< epochs of training
  double p = 0.5;                    ///< probability that a mask drops a feature, in [0, 1)
  std::int64_t sigma = 256;          ///< number of pre-selected masks (subnetworks)
  std::int64_t tau = 16;             ///< number of masks trained together in one iteration
};

/// The run-time state of a `GyroDropout` layer, as saved in checkpoints.
struct GyroDropoutState {
  std::int64_t training_step = 0;  ///< training forward passes so far
  std::int64_t iter_num = 0;       ///< forward passes between two draws of the active masks (0 before the first)
  at::Tensor preselect_masks;      ///< [sigma, features] 0/1 masks drawn at the first training forward
  at::Tensor selected_masks;       ///< [tau, features] the masks active now
};

/// Dropout over a fixed set of masks. At the first training forward pass it draws `sigma` masks over the
/// features (dim 1 of its [N, features] input; each entry kept with probability 1 − p) and sets
/// iter_num = int(iters_per_epoch · max_epoch / sigma) · tau. Every `iter_num` training forward passes (the
/// first included) it picks `tau` of them at random, with replacement; the batch is split into `tau` equal
/// consecutive groups of N / tau samples, group j multiplied by mask j and by 1 / (1 − p). In evaluation it
/// returns its input. Masks and active selection use LibTorch's global CPU generator (Composer picks the active
/// masks with NumPy); the masks are applied in the input's floating type. Composer counterpart: `GyroDropoutLayer`.
class GyroDropoutImpl : public torch::nn::Module {
 public:
  /// A layer with `options`.
  /// \throws std::invalid_argument for p outside [0, 1), sigma, tau, iters_per_epoch or max_epoch below 1, or
  ///         iters_per_epoch · max_epoch < sigma (Composer then divides by zero at the first forward pass).
  explicit GyroDropoutImpl(const GyroDropoutOptions& options = {}) : options_(options) {
    check(options_);
    state_.preselect_masks = at::empty({0, 0});
    state_.selected_masks = at::empty({0, 0});
  }

  /// Checks `options` as the constructor does.
  static void check(const GyroDropoutOptions& o) {
    if (!(o.p >= 0.0 && o.p < 1.0))
      throw std::invalid_argument("composer: GyroDropout p must be in [0, 1), got " + std::to_string(o.p));
    if (o.sigma < 1) throw std::invalid_argument("composer: GyroDropout sigma must be >= 1, got " + std::to_string(o.sigma));
    if (o.tau < 1) throw std::invalid_argument("composer: GyroDropout tau must be >= 1, got " + std::to_string(o.tau));
    if (o.iters_per_epoch < 1)
      throw std::invalid_argument("composer: GyroDropout iters_per_epoch must be >= 1, got " +
                                  std::to_string(o.iters_per_epoch));
    if (o.max_epoch < 1)
      throw std::invalid_argument("composer: GyroDropout max_epoch must be >= 1, got " + std::to_string(o.max_epoch));
    if (o.iters_per_epoch * o.max_epoch < o.sigma)
      throw std::invalid_argument("composer: GyroDropout needs iters_per_epoch * max_epoch (" +
                                  std::to_string(o.iters_per_epoch * o.max_epoch) + ") >= sigma (" +
                                  std::to_string(o.sigma) + "), so that each mask set is used for at least one step");
  }

  /// Applies the active masks in training; the identity in evaluation.
  /// \throws std::invalid_argument for an input that is not 2-D, a batch size not divisible by tau, or a feature
  ///         count other than the one the masks were drawn for.
  at::Tensor forward(const at::Tensor& x) {
    if (!is_training()) return x;
    if (x.dim() != 2)
      throw std::invalid_argument("composer: GyroDropout needs a 2-D input [N, features], got " +
                                  std::to_string(x.dim()) + " dimensions");
    const std::int64_t n = x.size(0);
    if (n % options_.tau != 0)
      throw std::invalid_argument("composer: GyroDropout needs a batch size divisible by tau = " +
                                  std::to_string(options_.tau) + ", got " + std::to_string(n));
    if (state_.training_step == 0) {
      state_.preselect_masks = (at::rand({options_.sigma, x.size(1)}) > options_.p).to(at::kFloat);
      state_.iter_num = (options_.iters_per_epoch * options_.max_epoch / options_.sigma) * options_.tau;
    }
    if (state_.preselect_masks.dim() != 2 || state_.preselect_masks.size(1) != x.size(1))
      throw std::invalid_argument("composer: GyroDropout masks cover " +
                                  std::to_string(state_.preselect_masks.dim() == 2 ? state_.preselect_masks.size(1) : 0) +
                                  " features, the input has " + std::to_string(x.size(1)));
    if (state_.training_step % state_.iter_num == 0) {
      const at::Tensor pick = at::randint(0, options_.sigma, {options_.tau}, at::TensorOptions().dtype(at::kLong));
      state_.selected_masks = state_.preselect_masks.index_select(0, pick);
    }
    ++state_.training_step;
    const at::Tensor mask =
        state_.selected_masks.to(x.device(), x.scalar_type()).repeat_interleave(n / options_.tau, /*dim=*/0);
    return x * mask * (1.0 / (1.0 - options_.p));
  }

  /// The settings.
  [[nodiscard]] const GyroDropoutOptions& options() const noexcept { return options_; }
  /// The run-time state (training step, schedule, masks).
  [[nodiscard]] const GyroDropoutState& state() const noexcept { return state_; }
  /// Restores a run-time state saved from a layer with the same options.
  void set_state(GyroDropoutState state) { state_ = std::move(state); }

 private:
  GyroDropoutOptions options_;
  GyroDropoutState state_;
};
/// Module holder of `GyroDropoutImpl`.
TORCH_MODULE(GyroDropout);

}  // namespace composer::modules
