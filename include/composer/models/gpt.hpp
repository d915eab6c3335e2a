#pragma once
/// \file
/// composer::models::GPT — a small decoder-only language model (GPT-2's shape: token and position embeddings,
/// pre-norm blocks of causal multi-head self-attention and an MLP, a final LayerNorm and an output head tied to the
/// token embedding), built from replaceable slots so that the transformer methods (GatedLinearUnits, Alibi,
/// LowPrecisionLayerNorm) act on it by surgery, as they act on Hugging Face's GPT-2 in Composer.

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <composer/core/model.hpp>
#include <composer/surgery/surgical_module.hpp>

namespace composer::models {

/// The activation of a transformer's MLP. Composer counterpart: the `hidden_act` of a Hugging Face config.
enum class Activation { gelu, relu, silu };

/// `activation(x)`: GELU (exact, erf form), ReLU or SiLU.
inline at::Tensor apply_activation(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::gelu: return at::gelu(x);
    case Activation::relu: return at::relu(x);
    case Activation::silu: return at::silu(x);
  }
  throw std::invalid_argument("composer: unknown activation");
}

/// The activation's name: "gelu", "relu" or "silu".
inline const char* to_string(Activation activation) noexcept {
  switch (activation) {
    case Activation::gelu: return "gelu";
    case Activation::relu: return "relu";
    case Activation::silu: return "silu";
  }
  return "?";
}

/// Causal multi-head attention over packed projections: `qkv` is [N, S, 3·D] (queries, keys and values side by
/// side), the result [N, S, D]. Each head attends with softmax(q·kᵀ/√(D/H) + bias) over the positions j ≤ i;
/// `bias`, when defined, is added to the scores before the causal mask and broadcasts against [N, H, S, S] (ALiBi's
/// [H, S, S]). Composer counterpart: the attention of Hugging Face's `GPT2Attention._attn`.
/// \throws std::invalid_argument when the last dimension is not a multiple of 3·heads.
inline at::Tensor causal_attention(const at::Tensor& qkv, std::int64_t heads, const at::Tensor& bias = {}) {
  if (qkv.dim() != 3 || heads <= 0 || qkv.size(2) % (3 * heads) != 0)
    throw std::invalid_argument("composer: causal_attention needs qkv of shape [N, S, 3*D] with D a multiple of the " +
                                std::to_string(heads) + " heads, got " + std::to_string(qkv.dim()) + " dimension(s)" +
                                (qkv.dim() == 3 ? " of last size " + std::to_string(qkv.size(2)) : std::string()));
  const std::int64_t n = qkv.size(0), s = qkv.size(1), d = qkv.size(2) / 3, head_dim = d / heads;
  auto split = [&](std::int64_t part) {
    return qkv.narrow(2, part * d, d).view({n, s, heads, head_dim}).transpose(1, 2);  // [N, H, S, hd]
  };
  const at::Tensor q = split(0), k = split(1), v = split(2);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).mul_(1.0 / std::sqrt(static_cast<double>(head_dim)));
  if (bias.defined()) scores = scores + bias;
  const at::Tensor future = at::ones({s, s}, scores.options().dtype(at::kBool)).triu_(1);
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({n, s, d});
}

/// Causal multi-head self-attention: proj(attention(qkv(x))), slots `qkv` (Linear D → 3D) and `proj` (Linear D →
/// D). Composer counterpart: Hugging Face's `GPT2Attention` (`c_attn`, `c_proj`).
class CausalSelfAttentionImpl : public surgery::SurgicalModule {
 public:
  /// Attention over `d_model` features in `heads` heads. \throws std::invalid_argument unless heads divides d_model.
  CausalSelfAttentionImpl(std::int64_t d_model, std::int64_t heads) : d_model_(d_model), heads_(heads) {
    if (d_model <= 0 || heads <= 0 || d_model % heads != 0)
      throw std::invalid_argument("composer: CausalSelfAttention needs d_model divisible by heads, got " +
                                  std::to_string(d_model) + " and " + std::to_string(heads));
    qkv_ = register_slot("qkv", torch::nn::Linear(d_model, 3 * d_model));
    proj_ = register_slot("proj", torch::nn::Linear(d_model, d_model));
  }
  /// [N, S, D] → [N, S, D].
  at::Tensor forward(const at::Tensor& x) { return call(proj_, causal_attention(call(qkv_, x), heads_)); }

  /// Model width.
  [[nodiscard]] std::int64_t d_model() const noexcept { return d_model_; }
  /// Number of heads.
  [[nodiscard]] std::int64_t heads() const noexcept { return heads_; }

 private:
  std::int64_t d_model_, heads_;
  Slot qkv_, proj_;
};
/// Module holder of `CausalSelfAttentionImpl`.
TORCH_MODULE(CausalSelfAttention);

/// The transformer's MLP: proj(act(fc(x))), slots `fc` (Linear D → hidden) and `proj` (Linear hidden → D).
/// Composer counterpart: Hugging Face's `GPT2MLP` (`c_fc`, `c_proj`), or `BertIntermediate` + `BertOutput`.
class TransformerMLPImpl : public surgery::SurgicalModule {
 public:
  /// An MLP D → hidden → D with `activation`.
  TransformerMLPImpl(std::int64_t d_model, std::int64_t hidden, Activation activation = Activation::gelu)
      : d_model_(d_model), hidden_(hidden), activation_(activation) {
    if (d_model <= 0 || hidden <= 0)
      throw std::invalid_argument("composer: TransformerMLP needs positive sizes, got " + std::to_string(d_model) +
                                  " -> " + std::to_string(hidden));
    fc_ = register_slot("fc", torch::nn::Linear(d_model, hidden));
    proj_ = register_slot("proj", torch::nn::Linear(hidden, d_model));
  }
  /// proj(act(fc(x))).
  at::Tensor forward(const at::Tensor& x) { return call(proj_, apply_activation(activation_, call(fc_, x))); }

  /// Model width.
  [[nodiscard]] std::int64_t d_model() const noexcept { return d_model_; }
  /// Hidden width (Composer's `d_ff`).
  [[nodiscard]] std::int64_t hidden() const noexcept { return hidden_; }
  /// The activation.
  [[nodiscard]] Activation activation() const noexcept { return activation_; }

 private:
  std::int64_t d_model_, hidden_;
  Activation activation_;
  Slot fc_, proj_;
};
/// Module holder of `TransformerMLPImpl`.
TORCH_MODULE(TransformerMLP);

/// Learned absolute position embeddings added to the token embeddings: x + weight[:S] for x of shape [N, S, D].
/// Composer counterpart: GPT-2's `wpe`.
class PositionEmbeddingImpl : public torch::nn::Module {
 public:
  /// Positions 0 … max_sequence_length − 1 of width d_model, initialised N(0, 0.01²) as GPT-2's.
  PositionEmbeddingImpl(std::int64_t max_sequence_length, std::int64_t d_model)
      : max_sequence_length_(max_sequence_length) {
    if (max_sequence_length <= 0 || d_model <= 0)
      throw std::invalid_argument("composer: PositionEmbedding needs positive sizes");
    weight = register_parameter("weight", torch::randn({max_sequence_length, d_model}) * 0.01);
  }
  /// x + weight[:S]. \throws std::invalid_argument for a sequence longer than max_sequence_length.
  at::Tensor forward(const at::Tensor& x) {
    if (x.dim() != 3 || x.size(1) > max_sequence_length_)
      throw std::invalid_argument(
          "composer: the model's position embeddings cover " + std::to_string(max_sequence_length_) +
          " positions, got a sequence of " + (x.dim() == 3 ? std::to_string(x.size(1)) : std::string("?")) +
          " (train with Alibi to run on longer sequences)");
    return x + weight.narrow(0, 0, x.size(1));
  }
  /// The longest sequence the embeddings cover.
  [[nodiscard]] std::int64_t max_sequence_length() const noexcept { return max_sequence_length_; }

  at::Tensor weight;  ///< [max_sequence_length, d_model]

 private:
  std::int64_t max_sequence_length_;
};
/// Module holder of `PositionEmbeddingImpl`.
TORCH_MODULE(PositionEmbedding);

/// A pre-norm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)); slots `ln_1`, `attn`, `ln_2`, `mlp`.
/// Composer counterpart: Hugging Face's `GPT2Block`.
class TransformerBlockImpl : public surgery::SurgicalModule {
 public:
  /// A block of width d_model with `heads` heads and an MLP of `hidden` units.
  TransformerBlockImpl(std::int64_t d_model, std::int64_t heads, std::int64_t hidden,
                       Activation activation = Activation::gelu, double layer_norm_eps = 1e-5) {
    using torch::nn::LayerNorm;
    using torch::nn::LayerNormOptions;
    ln_1_ = register_slot("ln_1", LayerNorm(LayerNormOptions({d_model}).eps(layer_norm_eps)));
    attn_ = register_slot("attn", CausalSelfAttention(d_model, heads));
    ln_2_ = register_slot("ln_2", LayerNorm(LayerNormOptions({d_model}).eps(layer_norm_eps)));
    mlp_ = register_slot("mlp", TransformerMLP(d_model, hidden, activation));
  }
  /// x + attn(ln_1(x)) + mlp(ln_2(·)).
  at::Tensor forward(at::Tensor x) {
    x = x + call(attn_, call(ln_1_, x));
    return x + call(mlp_, call(ln_2_, x));
  }

 private:
  Slot ln_1_, attn_, ln_2_, mlp_;
};
/// Module holder of `TransformerBlockImpl`.
TORCH_MODULE(TransformerBlock);

/// The blocks of a transformer run in order, each in a slot named by its index (`"0"`, `"1"`, ...). Composer
/// counterpart: GPT-2's `h` ModuleList.
class TransformerBlocksImpl : public surgery::SurgicalModule {
 public:
  /// `layers` blocks of width d_model.
  TransformerBlocksImpl(std::int64_t layers, std::int64_t d_model, std::int64_t heads, std::int64_t hidden,
                        Activation activation, double layer_norm_eps) {
    for (std::int64_t i = 0; i < layers; ++i)
      blocks_.push_back(
          register_slot(std::to_string(i), TransformerBlock(d_model, heads, hidden, activation, layer_norm_eps)));
  }
  /// The blocks applied in order.
  at::Tensor forward(at::Tensor x) {
    for (const auto& block : blocks_) x = call(block, x);
    return x;
  }

 private:
  std::vector<Slot> blocks_;
};
/// Module holder of `TransformerBlocksImpl`.
TORCH_MODULE(TransformerBlocks);

/// Options of `GPT`. The defaults make the small byte-level model of the language-model example (about 0.8 M
/// parameters).
struct GPTOptions {
  std::int64_t vocab_size = 256;           ///< tokens (256: bytes)
  std::int64_t max_sequence_length = 128;  ///< positions of the position embeddings (GPT-2's `n_positions`)
  std::int64_t d_model = 128;              ///< width (`n_embd`)
  std::int64_t heads = 4;                  ///< attention heads (`n_head`)
  std::int64_t layers = 4;                 ///< blocks (`n_layer`)
  std::int64_t mlp_ratio = 4;              ///< MLP hidden units per model unit (`n_inner = 4·n_embd`)
  Activation activation = Activation::gelu;  ///< the MLP's activation (`activation_function`)
  double layer_norm_eps = 1e-5;            ///< LayerNorm epsilon (`layer_norm_epsilon`)
};

/// A decoder-only language model: logits = head(ln_f(blocks(token_embedding(ids) + positions))), the head tied to
/// the token embedding. Input: token ids, int64 [N, S]. Output: logits laid out [N, vocab, S] — the class dimension
/// second, PyTorch's layout for per-position classes — so that cross entropy against next-token targets [N, S],
/// LabelSmoothing and the metrics treat every position as a sample. Slots: `position_embedding`, `blocks` (whose slots
/// are `"0"`, `"1"`, ...), `ln_f`. Weights initialised as GPT-2's (N(0, 0.02²), residual projections scaled by 1/√(2·layers)).
/// Composer counterpart: `composer.models.create_gpt2` (a Hugging Face `GPT2LMHeadModel`).
class GPTImpl : public surgery::SurgicalModule {
 public:
  /// A GPT with `options`. \throws std::invalid_argument for non-positive sizes or heads not dividing d_model.
  explicit GPTImpl(const GPTOptions& options = {}) : options_(options) {
    const auto& o = options_;
    if (o.vocab_size <= 0 || o.max_sequence_length <= 0 || o.layers <= 0 || o.mlp_ratio <= 0)
      throw std::invalid_argument("composer: GPT needs positive vocab_size, max_sequence_length, layers and mlp_ratio");
    token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size, o.d_model));
    position_embedding_ = register_slot("position_embedding", PositionEmbedding(o.max_sequence_length, o.d_model));
    blocks_ = register_slot("blocks", TransformerBlocks(o.layers, o.d_model, o.heads, o.mlp_ratio * o.d_model,
                                                        o.activation, o.layer_norm_eps));
    ln_f_ = register_slot("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model}).eps(o.layer_norm_eps)));
    initialise();
  }

  /// Token ids [N, S] → logits [N, vocab, S].
  /// \throws std::invalid_argument for inputs that are not a 2-D integer tensor.
  at::Tensor forward(const at::Tensor& ids) {
    if (ids.dim() != 2 || at::isFloatingType(ids.scalar_type()))
      throw std::invalid_argument("composer: GPT takes token ids of shape [N, S] with an integer dtype, got " +
                                  std::to_string(ids.dim()) + " dimension(s) of " +
                                  std::string(c10::toString(ids.scalar_type())));
    at::Tensor x = call(position_embedding_, token_embedding->forward(ids));
    x = call(ln_f_, call(blocks_, x));
    return at::matmul(x, token_embedding->weight.t()).transpose(1, 2);
  }

  /// The options the model was built with.
  [[nodiscard]] const GPTOptions& options() const noexcept { return options_; }

  torch::nn::Embedding token_embedding{nullptr};  ///< [vocab, d_model]; also the output head (tied)

 private:
  void initialise() {
    torch::NoGradGuard no_grad;
    const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(options_.layers));
    for (auto& item : named_parameters()) {
      const std::string& name = item.key();
      at::Tensor& p = item.value();
      if (name.find("position_embedding") != std::string::npos || name.find("ln_") != std::string::npos) continue;
      if (name.ends_with(".bias")) {
        p.zero_();
      } else {
        const bool residual = name.ends_with("attn.proj.weight") || name.ends_with("mlp.proj.weight");
        p.normal_(0.0, residual ? residual_std : 0.02);
      }
    }
  }

  GPTOptions options_;
  Slot position_embedding_, blocks_, ln_f_;
};
/// Module holder of `GPTImpl`.
TORCH_MODULE(GPT);

/// Mean next-token cross entropy of logits [N, vocab, S] against targets [N, S] (class indices; -100 ignored, as
/// Hugging Face's loss) or dense targets shaped like the logits (LabelSmoothing's): `composer::cross_entropy_loss`
/// after checking that the shapes are those of a language model. Composer counterpart: the loss of
/// `HuggingFaceModel` for a causal language model.
/// \throws std::invalid_argument for shapes that do not match.
inline at::Tensor language_model_loss(const at::Tensor& logits, const at::Tensor& targets) {
  if (logits.dim() != 3)
    throw std::invalid_argument("composer: language_model_loss needs logits [N, vocab, S], got " +
                                std::to_string(logits.dim()) + " dimension(s)");
  if (at::isFloatingType(targets.scalar_type())) {
    if (targets.sizes() != logits.sizes())
      throw std::invalid_argument("composer: language_model_loss: dense targets must have the logits' shape");
  } else if (targets.dim() != 2 || targets.size(0) != logits.size(0) || targets.size(1) != logits.size(2))
    throw std::invalid_argument("composer: language_model_loss: targets must be [N, S] = [" +
                                std::to_string(logits.size(0)) + ", " + std::to_string(logits.size(2)) + "], got " +
                                std::to_string(targets.dim()) + " dimension(s)");
  return composer::cross_entropy_loss(logits, targets);  // at::cross_entropy_loss ignores -100 by default
}

}  // namespace composer::models
