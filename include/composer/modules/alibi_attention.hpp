#pragma once
/// \file
/// composer::modules::AlibiCausalSelfAttention — causal self-attention with ALiBi's linear biases in place of
/// position embeddings (Press et al. 2021, arXiv:2108.12409).

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <composer/functional/alibi_bias.hpp>
#include <composer/models/gpt.hpp>
#include <composer/surgery/surgical_module.hpp>

namespace composer::modules {

/// A `models::CausalSelfAttention` whose heads add the ALiBi bias −slope_h·(i − j) to their scores, so that the
/// model needs no position embeddings and runs on sequences up to `max_sequence_length`, longer than those it was
/// trained on. It holds the original's `qkv` and `proj` layers (the same parameters, under the same names), so
/// weights and optimizer state carry over. The bias is built on the scores' device and dtype for each new length.
/// Composer counterpart: the `GPT2Attention._attn` that `composer.algorithms.alibi` installs.
class AlibiCausalSelfAttentionImpl : public surgery::SurgicalModule {
 public:
  /// Takes over `original`'s layers. \throws std::invalid_argument when its `qkv` or `proj` is not a Linear layer
  /// (another surgery replaced it) or max_sequence_length < 1.
  AlibiCausalSelfAttentionImpl(const models::CausalSelfAttentionImpl& original, std::int64_t max_sequence_length)
      : heads_(original.heads()), max_sequence_length_(max_sequence_length) {
    if (max_sequence_length < 1)
      throw std::invalid_argument("composer: Alibi max_sequence_length must be positive, got " +
                                  std::to_string(max_sequence_length));
    qkv_ = register_slot("qkv", linear_slot(original, "qkv"));
    proj_ = register_slot("proj", linear_slot(original, "proj"));
  }

  /// [N, S, D] → [N, S, D]. \throws std::invalid_argument for S > max_sequence_length.
  at::Tensor forward(const at::Tensor& x) {
    if (x.dim() != 3 || x.size(1) > max_sequence_length_)
      throw std::invalid_argument("composer: Alibi attention takes sequences of at most max_sequence_length = " +
                                  std::to_string(max_sequence_length_) + " tokens, got " +
                                  (x.dim() == 3 ? std::to_string(x.size(1)) : std::string("a tensor of another rank")));
    const at::Tensor qkv = call(qkv_, x);
    if (!bias_.defined() || bias_.size(1) != x.size(1) || bias_.device() != qkv.device() ||
        bias_.scalar_type() != qkv.scalar_type())
      bias_ = functional::alibi_bias(heads_, x.size(1), qkv.options());
    return call(proj_, models::causal_attention(qkv, heads_, bias_));
  }

  /// Number of heads.
  [[nodiscard]] std::int64_t heads() const noexcept { return heads_; }
  /// The longest sequence accepted.
  [[nodiscard]] std::int64_t max_sequence_length() const noexcept { return max_sequence_length_; }

 private:
  static torch::nn::Linear linear_slot(const models::CausalSelfAttentionImpl& original, const std::string& name) {
    auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(original.slot_module(name));
    if (!linear)
      throw std::invalid_argument("composer: Alibi needs the attention's '" + name +
                                  "' to be a Linear layer; another surgery replaced it (apply Alibi first)");
    return torch::nn::Linear(linear);
  }

  std::int64_t heads_, max_sequence_length_;
  Slot qkv_, proj_;
  at::Tensor bias_;  // cache for the last length, device and dtype (not a buffer: not saved)
};
/// Module holder of `AlibiCausalSelfAttentionImpl`.
TORCH_MODULE(AlibiCausalSelfAttention);

}  // namespace composer::modules
