#pragma once
/// \file
/// Stochastic residual blocks (Huang et al. 2016, "Deep Networks with Stochastic Depth", arXiv:1603.09382):
/// `StochasticBasicBlock` wraps a `models::BasicBlock` and drops its residual branch for the whole batch
/// ("block") or for random samples ("sample") during training. Composer counterpart:
/// `composer.algorithms.stochastic_depth.stochastic_layers` (`block_stochastic_forward`,
/// `sample_stochastic_forward`, `_sample_drop`).

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <composer/models/resnet.hpp>

namespace composer::modules {

/// How a stochastic block drops its residual branch. Composer counterpart: `stochastic_method`.
enum class StochasticMethod {
  block,   ///< "block": the whole batch skips the residual branch with probability p
  sample,  ///< "sample": each sample's residual branch is zeroed with probability p
};

/// "block" or "sample".
[[nodiscard]] constexpr std::string_view to_string(StochasticMethod method) noexcept {
  return method == StochasticMethod::block ? "block" : "sample";
}

/// The method named `name` ("block" or "sample"). \throws std::invalid_argument for another name.
[[nodiscard]] inline StochasticMethod stochastic_method_from_string(std::string_view name) {
  if (name == "block") return StochasticMethod::block;
  if (name == "sample") return StochasticMethod::sample;
  throw std::invalid_argument("composer: stochastic_method must be one of 'block', 'sample', got '" +
                              std::string(name) + "'");
}

/// Zeroes whole samples of `x` with probability `drop_rate` in training (mask = floor(1 − p + U[0, 1)) drawn per
/// sample from LibTorch's generator, no rescaling) and scales `x` by 1 − p in evaluation. Composer counterpart:
/// `stochastic_layers._sample_drop(x, sample_drop_rate, is_training)`.
[[nodiscard]] inline at::Tensor sample_drop(const at::Tensor& x, double drop_rate, bool training) {
  const float keep = 1.0f - static_cast<float>(drop_rate);
  if (!training) return x * keep;
  std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
  shape.front() = x.size(0);
  const at::Tensor mask = (at::rand(shape, x.options()) + keep).floor_();
  return x * mask;
}

/// A `models::BasicBlock` whose residual branch is dropped at random in training, Composer's stochastic ResNet
/// block. With p = `drop_rate()`:
///  * "block": in training, with probability p (one draw per call) the block returns its shortcut alone —
///    relu(shortcut(x)) with a projection, x itself with an identity shortcut; otherwise
///    relu(residual(x) + shortcut(x)). In evaluation it returns relu((1 − p)·residual(x) + shortcut(x)).
///  * "sample": relu(m ⊙ residual(x) + shortcut(x)) with m a per-sample 0/1 mask keeping each sample with
///    probability 1 − p in training, and m = 1 − p in evaluation; p = 0 leaves the block as it was.
/// The wrapped block is child `block` (so its parameters are the same tensors, now under `…block.conv1.weight`
/// and so on) and stays reachable to surgery through its own slots. Composer counterpart: a torchvision
/// `Bottleneck` whose `forward` `make_resnet_bottleneck_stochastic` rebinds to `block_stochastic_forward` or
/// `sample_stochastic_forward`.
class StochasticBasicBlockImpl : public torch::nn::Module {
 public:
  /// Wraps `block` with drop rate `drop_rate` in [0, 1] and `method`.
  /// \throws std::invalid_argument for an empty block or a drop rate outside [0, 1].
  StochasticBasicBlockImpl(models::BasicBlock block, double drop_rate, StochasticMethod method = StochasticMethod::block)
      : method_(method) {
    if (!block) throw std::invalid_argument("composer: StochasticBasicBlock needs a block");
    set_drop_rate(drop_rate);
    block_ = register_module("block", std::move(block));
  }

  /// The wrapped block's residual branch.
  at::Tensor residual(const at::Tensor& x) { return block_->residual(x); }
  /// The wrapped block's shortcut branch.
  at::Tensor shortcut(const at::Tensor& x) { return block_->shortcut(x); }

  /// The stochastic forward pass described on the class.
  at::Tensor forward(const at::Tensor& x) {
    const float p = static_cast<float>(drop_rate_);
    if (method_ == StochasticMethod::block) {
      const bool keep =
          !is_training() || at::bernoulli(at::scalar_tensor(1.0f - p, at::TensorOptions().dtype(at::kFloat))).item<float>() != 0.0f;
      if (!keep) return has_projection() ? at::relu(shortcut(x)) : x;
      at::Tensor out = residual(x);
      if (!is_training()) out = out * (1.0f - p);
      return at::relu(out + shortcut(x));
    }
    at::Tensor out = residual(x);
    if (drop_rate_ != 0.0) out = sample_drop(out, drop_rate_, is_training());
    return at::relu(out + shortcut(x));
  }

  /// The probability of dropping the residual branch (the whole block, or each sample).
  [[nodiscard]] double drop_rate() const noexcept { return drop_rate_; }
  /// Sets the drop probability. \throws std::invalid_argument outside [0, 1].
  void set_drop_rate(double drop_rate) {
    if (!(drop_rate >= 0.0 && drop_rate <= 1.0))
      throw std::invalid_argument("composer: drop_rate must be between 0 and 1, got " + std::to_string(drop_rate));
    drop_rate_ = drop_rate;
  }
  /// "block" or "sample".
  [[nodiscard]] StochasticMethod method() const noexcept { return method_; }
  /// The wrapped block.
  [[nodiscard]] const models::BasicBlock& block() const noexcept { return block_; }
  /// Whether the shortcut is a projection (so a dropped block returns relu(shortcut(x)) rather than x).
  [[nodiscard]] bool has_projection() const { return block_->has_slot("shortcut"); }

 private:
  StochasticMethod method_;
  double drop_rate_ = 0.0;
  models::BasicBlock block_{nullptr};
};
/// Module holder of `StochasticBasicBlockImpl`.
TORCH_MODULE(StochasticBasicBlock);

}  // namespace composer::modules
