#pragma once
/// \file
/// `apply_alibi`: a GPT's position embeddings removed and its attention given ALiBi's linear biases, by surgery
/// (Press et al. 2021, arXiv:2108.12409); `scale_sequence_length`, Alibi's reshaping of training batches into more,
/// shorter sequences. Composer counterpart: `composer.functional.apply_alibi` and the batch part of
/// `composer.algorithms.Alibi`.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>

#include <composer/core/batch.hpp>
#include <composer/functional/alibi_bias.hpp>
#include <composer/functional/common.hpp>
#include <composer/models/gpt.hpp>
#include <composer/modules/alibi_attention.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::functional {

/// Gives `model` ALiBi: every `models::PositionEmbedding` is replaced by an identity (its parameters leave the
/// optimizers), and every `models::CausalSelfAttention` by a `modules::AlibiCausalSelfAttention` that keeps its
/// layers and accepts sequences of up to `max_sequence_length` tokens. Already-converted modules are left alone,
/// so a second application changes nothing. Returns what was replaced (on a GPT of L blocks: 1 + L modules).
/// Composer counterpart: `composer.functional.apply_alibi(model, max_sequence_length, optimizers=None)`, which on
/// GPT-2 zeroes and freezes the position embeddings (`wpe`) rather than removing them.
/// \throws std::invalid_argument for max_sequence_length < 1 or a module not held in a slot (the model is then
///         unchanged).
inline surgery::SurgeryReport apply_alibi(torch::nn::Module& model, std::int64_t max_sequence_length,
                                          const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  if (max_sequence_length < 1)
    detail::fail("apply_alibi max_sequence_length must be positive, got " + std::to_string(max_sequence_length));
  surgery::SurgeryReport report = surgery::replace_module_classes<models::CausalSelfAttentionImpl>(
      model,
      [&](models::CausalSelfAttentionImpl& attention, std::int64_t) {
        return torch::nn::AnyModule(modules::AlibiCausalSelfAttention(attention, max_sequence_length));
      },
      optimizers);
  report += surgery::replace_module_classes<models::PositionEmbeddingImpl>(
      model, [](models::PositionEmbeddingImpl&, std::int64_t) { return torch::nn::AnyModule(torch::nn::Identity()); },
      optimizers);
  return report;
}

/// Alibi's batch reshaping: inputs and targets of shape [B, S] become [B/scaling, S·scaling] (with scaling 0.25, four
/// times as many sequences a quarter as long), row-major, so that every token keeps its target. Scaling 1 returns
/// the batch unchanged. Composer counterpart: Alibi's `AFTER_DATALOADER` step with `train_sequence_length_scaling`.
/// \throws std::invalid_argument for scaling outside (0, 1], inputs that are not [B, S], targets of another shape,
///         or an S·scaling that is not a whole number of tokens.
[[nodiscard]] inline Batch scale_sequence_length(const Batch& batch, double scaling) {
  if (!(scaling > 0.0 && scaling <= 1.0))
    detail::fail("Alibi train_sequence_length_scaling must be in (0, 1], got " + detail::num(scaling));
  if (scaling == 1.0) return batch;
  if (batch.inputs.dim() != 2)
    detail::fail("Alibi's sequence-length scaling needs inputs of shape [B, S], got " +
                 std::to_string(batch.inputs.dim()) + " dimension(s)");
  if (batch.targets.sizes() != batch.inputs.sizes())
    detail::fail("Alibi's sequence-length scaling needs targets shaped like the inputs [B, S]");
  const double scaled = static_cast<double>(batch.inputs.size(1)) * scaling;
  const auto length = static_cast<std::int64_t>(std::llround(scaled));
  if (length < 1 || std::fabs(scaled - static_cast<double>(length)) > 1e-9 || batch.inputs.size(1) % length != 0)
    detail::fail("Alibi train_sequence_length_scaling " + detail::num(scaling) + " does not divide sequences of " +
                 std::to_string(batch.inputs.size(1)) + " tokens into whole sequences");
  return Batch{batch.inputs.reshape({-1, length}), batch.targets.reshape({-1, length})};
}

}  // namespace composer::functional
