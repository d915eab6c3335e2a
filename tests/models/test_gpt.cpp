// The small GPT: shapes, causality, parameter count, tied head, its loss and its errors.
#include <torch/torch.h>

#include <composer/models/gpt.hpp>
#include <composer/surgery/module_surgery.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

namespace {

namespace models = composer::models;

models::GPTOptions tiny(std::int64_t layers = 2) {
  return {.vocab_size = 11, .max_sequence_length = 8, .d_model = 16, .heads = 2, .layers = layers, .mlp_ratio = 4};
}

std::int64_t parameter_count(torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace

TEST_CASE("GPT maps token ids [N, S] to logits [N, vocab, S]") {
  torch::manual_seed(0);
  models::GPT gpt(tiny());
  const auto ids = torch::randint(0, 11, {3, 5}, torch::kLong);
  const auto logits = gpt->forward(ids);
  CHECK(logits.sizes() == torch::IntArrayRef({3, 11, 5}));
  CHECK(torch::isfinite(logits).all().item<bool>());
}

TEST_CASE("GPT is causal: a token changes the logits of its own and later positions only") {
  torch::manual_seed(1);
  models::GPT gpt(tiny());
  gpt->eval();
  auto ids = torch::randint(0, 11, {1, 8}, torch::kLong);
  const auto before = gpt->forward(ids);
  ids[0][5] = (ids[0][5].item<std::int64_t>() + 1) % 11;
  const auto after = gpt->forward(ids);
  CHECK(torch::equal(before.narrow(2, 0, 5), after.narrow(2, 0, 5)));
  CHECK_FALSE(torch::allclose(before.narrow(2, 5, 3), after.narrow(2, 5, 3)));
}

TEST_CASE("GPT's default size: parameters counted by hand, the head tied to the token embedding") {
  models::GPT gpt;
  // token 256·128, positions 128·128, per block: 2 LayerNorms 4·128, qkv 128·384 + 384, proj 128·128 + 128,
  // fc 128·512 + 512, proj 512·128 + 128; final LayerNorm 2·128
  const std::int64_t block = 4 * 128 + (128 * 384 + 384) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128);
  CHECK(parameter_count(*gpt) == 256 * 128 + 128 * 128 + 4 * block + 2 * 128);
  CHECK(parameter_count(*gpt) == 842496);
  // the output head is the token embedding: the logits are the final features times its transpose
  CHECK(composer::surgery::count_module_instances<torch::nn::LinearImpl>(*gpt) == 4 * 4);
  CHECK(composer::surgery::count_module_instances<torch::nn::LayerNormImpl>(*gpt) == 2 * 4 + 1);
  CHECK(composer::surgery::count_module_instances<models::CausalSelfAttentionImpl>(*gpt) == 4);
  CHECK(composer::surgery::count_module_instances<models::TransformerMLPImpl>(*gpt) == 4);
}

TEST_CASE("causal_attention equals a hand-written single-head softmax attention") {
  torch::manual_seed(2);
  const auto qkv = torch::randn({1, 3, 6}, torch::kDouble);  // D = 2, one head
  const auto out = models::causal_attention(qkv, 1);
  const auto q = qkv.narrow(2, 0, 2)[0], k = qkv.narrow(2, 2, 2)[0], v = qkv.narrow(2, 4, 2)[0];
  for (int i = 0; i < 3; ++i) {
    std::vector<double> w;
    double total = 0;
    for (int j = 0; j <= i; ++j) {
      w.push_back(std::exp((q[i] * k[j]).sum().item<double>() / std::sqrt(2.0)));
      total += w.back();
    }
    auto expected = torch::zeros({2}, torch::kDouble);
    for (int j = 0; j <= i; ++j) expected += v[j] * (w[j] / total);
    CHECK(torch::allclose(out[0][i], expected, 1e-12, 1e-12));
  }
  // a bias enters the scores before the softmax
  const auto bias = torch::tensor({0.0, -1.0, -2.0, -1.0, 0.0, -1.0, -2.0, -1.0, 0.0}, torch::kDouble).view({1, 3, 3});
  const auto biased = models::causal_attention(qkv, 1, bias);
  const double w0 = std::exp((q[1] * k[0]).sum().item<double>() / std::sqrt(2.0) - 1.0);
  const double w1 = std::exp((q[1] * k[1]).sum().item<double>() / std::sqrt(2.0));
  CHECK(torch::allclose(biased[0][1], (v[0] * w0 + v[1] * w1) / (w0 + w1), 1e-12, 1e-12));
}

TEST_CASE("language_model_loss is the mean next-token cross entropy, ignoring -100") {
  // two positions over a vocabulary of 2: logits (0, 0) and (ln 3, 0); targets 0 and 0
  const auto logits = torch::tensor({0.0, std::log(3.0), 0.0, 0.0}, torch::kDouble).view({1, 2, 2});
  const auto targets = torch::tensor({0, 0}, torch::kLong).view({1, 2});
  CHECK(models::language_model_loss(logits, targets).item<double>() ==
        doctest::Approx((std::log(2.0) + std::log(4.0 / 3.0)) / 2));
  const auto ignoring = torch::tensor({-100, 0}, torch::kLong).view({1, 2});
  CHECK(models::language_model_loss(logits, ignoring).item<double>() == doctest::Approx(std::log(4.0 / 3.0)));
  CHECK_THROWS_WITH_AS(models::language_model_loss(logits, torch::zeros({1, 3}, torch::kLong)),
                       doctest::Contains("targets must be [N, S] = [1, 2]"), std::invalid_argument);
}

TEST_CASE("GPT refuses what it cannot run, by name") {
  models::GPT gpt(tiny());
  CHECK_THROWS_WITH_AS(gpt->forward(torch::zeros({1, 9}, torch::kLong)),
                       doctest::Contains("cover 8 positions, got a sequence of 9"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(gpt->forward(torch::zeros({1, 4})), doctest::Contains("integer dtype"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(models::GPT(models::GPTOptions{.d_model = 10, .heads = 4}),
                       doctest::Contains("d_model divisible by heads, got 10 and 4"), std::invalid_argument);
}
