#pragma once
/// \file
/// Ghost batch normalisation (Hoffer et al. 2017, "Train longer, generalize better", arXiv:1705.08741): a batch
/// norm layer that normalises each chunk of `ghost_batch_size` samples with that chunk's own statistics.
/// Composer counterpart: `composer.algorithms.ghost_batchnorm.ghost_batchnorm` (`GhostBatchNorm1d/2d/3d`).

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Optional.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/pimpl.h>

#include <composer/surgery/surgical_module.hpp>

namespace composer::modules {

/// A batch norm layer (`BatchNormT` is `torch::nn::BatchNorm1dImpl`, `2dImpl` or `3dImpl`) applied to the batch
/// in chunks. In training, the batch of N samples (dim 0) is split into ceil(N / ghost_batch_size) chunks (as
/// `at::chunk` splits: equal chunks of ceil(N / chunks) samples, the last one smaller) and each chunk is
/// normalised with its own mean and biased variance; each chunk also updates the running statistics once, with
/// the layer's momentum divided by the number of chunks so that the running averages move about as far as
/// one whole-batch update would. In evaluation the running statistics are used and the batch is normalised at
/// once (the same numbers as chunk by chunk). The wrapped layer keeps its parameters and buffers; it sits in
/// slot `batchnorm`. Composer counterpart: `_GhostBatchNorm` (as `GhostBatchNorm1d/2d/3d`).
template <class BatchNormT>
class GhostBatchNormImpl : public surgery::SurgicalModule {
 public:
  /// The holder type of the wrapped layer (e.g. `torch::nn::BatchNorm2d`).
  using BatchNormHolder = torch::nn::ModuleHolder<BatchNormT>;

  /// Wraps `batchnorm` (kept as it is, parameters and running statistics included).
  /// \throws std::invalid_argument for a null layer or ghost_batch_size <= 0.
  explicit GhostBatchNormImpl(std::shared_ptr<BatchNormT> batchnorm, std::int64_t ghost_batch_size = 32)
      : ghost_batch_size_(ghost_batch_size) {
    if (!batchnorm) throw std::invalid_argument("composer: GhostBatchNorm needs a batch norm layer to wrap, got null");
    if (ghost_batch_size <= 0)
      throw std::invalid_argument("composer: GhostBatchNorm ghost_batch_size must be positive, got " +
                                  std::to_string(ghost_batch_size));
    batchnorm_ = register_slot("batchnorm", BatchNormHolder(std::move(batchnorm)));
  }

  /// A ghost batch norm over a fresh batch norm layer with `options`.
  explicit GhostBatchNormImpl(const torch::nn::BatchNormOptions& options, std::int64_t ghost_batch_size = 32)
      : GhostBatchNormImpl(std::make_shared<BatchNormT>(options), ghost_batch_size) {}

  /// Normalises `input` chunk by chunk in training, at once in evaluation.
  /// \throws std::invalid_argument in training when the batch has fewer than ghost_batch_size samples.
  at::Tensor forward(const at::Tensor& input) {
    if (!is_training()) return call(batchnorm_, input);
    const std::int64_t batch_size = input.size(0);
    if (batch_size < ghost_batch_size_)
      throw std::invalid_argument("composer: GhostBatchNorm got a batch of " + std::to_string(batch_size) +
                                  " samples, fewer than ghost_batch_size " + std::to_string(ghost_batch_size_));
    const std::int64_t chunks = (batch_size + ghost_batch_size_ - 1) / ghost_batch_size_;
    const std::shared_ptr<BatchNormT> bn = slot_as<BatchNormT>(batchnorm_);
    c10::optional<double> momentum;
    if (bn) momentum = bn->options.momentum();
    struct Restore {  // puts the momentum back even if a chunk throws
      BatchNormT* bn;
      c10::optional<double> momentum;
      ~Restore() {
        if (bn != nullptr) bn->options.momentum(momentum);
      }
    } restore{momentum ? bn.get() : nullptr, momentum};
    if (momentum) bn->options.momentum(*momentum / static_cast<double>(chunks));
    std::vector<at::Tensor> normalized;
    normalized.reserve(static_cast<std::size_t>(chunks));
    for (const at::Tensor& chunk : input.chunk(chunks, 0)) normalized.push_back(call(batchnorm_, chunk));
    return at::cat(normalized, 0);
  }

  /// The number of samples normalised together.
  [[nodiscard]] std::int64_t ghost_batch_size() const noexcept { return ghost_batch_size_; }
  /// The wrapped batch norm layer (null if another surgery replaced it by a different type).
  [[nodiscard]] std::shared_ptr<BatchNormT> batchnorm() const { return slot_as<BatchNormT>(batchnorm_); }

 private:
  std::int64_t ghost_batch_size_;
  Slot batchnorm_;
};

/// Ghost batch norm over a `torch::nn::BatchNorm1d` (inputs [N, C] or [N, C, L]). Composer counterpart:
/// `GhostBatchNorm1d`.
class GhostBatchNorm1dImpl : public GhostBatchNormImpl<torch::nn::BatchNorm1dImpl> {
 public:
  using GhostBatchNormImpl::GhostBatchNormImpl;
};
/// Module holder of `GhostBatchNorm1dImpl`.
TORCH_MODULE(GhostBatchNorm1d);

/// Ghost batch norm over a `torch::nn::BatchNorm2d` (inputs [N, C, H, W]). Composer counterpart:
/// `GhostBatchNorm2d`.
class GhostBatchNorm2dImpl : public GhostBatchNormImpl<torch::nn::BatchNorm2dImpl> {
 public:
  using GhostBatchNormImpl::GhostBatchNormImpl;
};
/// Module holder of `GhostBatchNorm2dImpl`.
TORCH_MODULE(GhostBatchNorm2d);

/// Ghost batch norm over a `torch::nn::BatchNorm3d` (inputs [N, C, D, H, W]). Composer counterpart:
/// `GhostBatchNorm3d`.
class GhostBatchNorm3dImpl : public GhostBatchNormImpl<torch::nn::BatchNorm3dImpl> {
 public:
  using GhostBatchNormImpl::GhostBatchNormImpl;
};
/// Module holder of `GhostBatchNorm3dImpl`.
TORCH_MODULE(GhostBatchNorm3d);

}  // namespace composer::modules
