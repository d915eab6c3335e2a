// The transformer methods on the small GPT: ALiBi's slopes and bias, the gated linear unit's formula, the
// sequence-length warmup's schedule and cuts, the modules each surgery replaces, checkpoints of the changed
// models, and a Trainer composing all three with LowPrecisionLayerNorm.
#include <torch/torch.h>

#include <composer/algorithms/alibi.hpp>
#include <composer/algorithms/ema.hpp>
#include <composer/algorithms/gated_linear_units.hpp>
#include <composer/algorithms/gradient_clipping.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/layer_freezing.hpp>
#include <composer/algorithms/low_precision_layernorm.hpp>
#include <composer/algorithms/seq_length_warmup.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/functional/alibi.hpp>
#include <composer/functional/gated_linear_units.hpp>
#include <composer/functional/seq_length_warmup.hpp>
#include <composer/io/files.hpp>
#include <composer/models/gpt.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace alg = composer::algorithms;
namespace fn = composer::functional;
namespace mod = composer::modules;
namespace models = composer::models;
namespace io = composer::io;
using composer::Time;
using composer::surgery::count_module_instances;

models::GPTOptions small(std::int64_t layers = 2, std::int64_t max_sequence_length = 16) {
  return {.vocab_size = 13, .max_sequence_length = max_sequence_length, .d_model = 32, .heads = 4, .layers = layers,
          .mlp_ratio = 4};
}

std::int64_t parameter_count(torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

std::int64_t optimizer_tensor_count(const torch::optim::Optimizer& optimizer) {
  std::int64_t n = 0;
  for (const auto& group : optimizer.param_groups()) n += static_cast<std::int64_t>(group.params().size());
  return n;
}

// Sequences of a learnable rule: token t+1 = (token t + 3) mod 13, each sequence from a random start; inputs are
// tokens 0..S-1 and targets tokens 1..S of each sequence.
torch::Tensor counting_tokens(std::int64_t sequences, std::int64_t length, std::uint64_t seed) {
  torch::manual_seed(seed);
  const auto start = torch::randint(0, 13, {sequences, 1}, torch::kLong);
  return (start + 3 * torch::arange(length + 1, torch::kLong).unsqueeze(0)) % 13;
}

composer::data::TensorLoader counting_sequences(std::int64_t sequences, std::int64_t length, std::int64_t batch,
                                                std::uint64_t seed = 0) {
  const auto tokens = counting_tokens(sequences, length, seed);
  return composer::data::TensorLoader(tokens.narrow(1, 0, length).contiguous(), tokens.narrow(1, 1, length).contiguous(),
                                      composer::data::TensorLoaderOptions{.batch_size = batch, .shuffle = true, .seed = seed});
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_transformer_methods_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------- ALiBi

TEST_CASE("alibi_slopes: the geometric sequence of the ALiBi paper, and its interleaving for other head counts") {
  const std::vector<double> eight = fn::alibi_slopes(8);
  for (int h = 0; h < 8; ++h) CHECK(eight[h] == doctest::Approx(std::pow(2.0, -(h + 1))));
  CHECK(fn::alibi_slopes(4) == std::vector<double>{0.25, 1.0 / 16, 1.0 / 64, 1.0 / 256});
  CHECK(fn::alibi_slopes(1) == std::vector<double>{1.0 / 256});
  // 6 heads: the 4-head slopes, then the 1st and 3rd of the 8-head ones
  const std::vector<double> six = fn::alibi_slopes(6);
  const std::vector<double> expected{0.25, 1.0 / 16, 1.0 / 64, 1.0 / 256, 0.5, 0.125};
  REQUIRE(six.size() == 6);
  for (int h = 0; h < 6; ++h) CHECK(six[h] == doctest::Approx(expected[h]));
  CHECK_THROWS_AS(fn::alibi_slopes(0), std::invalid_argument);
}

TEST_CASE("alibi_bias: -slope * |i - j| per head, on the requested dtype") {
  const auto bias = fn::alibi_bias(2, 3, torch::kDouble);
  REQUIRE(bias.sizes() == torch::IntArrayRef({2, 3, 3}));
  CHECK((bias.scalar_type() == torch::kDouble));
  const auto distance = torch::tensor({0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0}, torch::kDouble).view({3, 3});
  CHECK(torch::allclose(bias[0], -distance / 16.0));   // 2 heads: slopes 2^-4 and 2^-8
  CHECK(torch::allclose(bias[1], -distance / 256.0));
  CHECK((fn::alibi_bias(4, 5).scalar_type() == torch::kFloat));
}

TEST_CASE("AlibiCausalSelfAttention: the original's layers with the bias added to every head's scores") {
  torch::manual_seed(3);
  models::CausalSelfAttention attention(8, 2);
  mod::AlibiCausalSelfAttention alibi(*attention, 32);
  const auto x = torch::randn({2, 5, 8});
  const auto qkv = attention->slot_module("qkv")->as<torch::nn::Linear>()->forward(x);
  const auto expected = attention->slot_module("proj")->as<torch::nn::Linear>()->forward(
      models::causal_attention(qkv, 2, fn::alibi_bias(2, 5)));
  CHECK(torch::allclose(alibi->forward(x), expected, 1e-5, 1e-6));
  CHECK_FALSE(torch::allclose(alibi->forward(x), attention->forward(x), 1e-3, 1e-3));
  // the same parameters, under the same names
  CHECK(alibi->named_parameters().keys() == attention->named_parameters().keys());
  CHECK(alibi->parameters()[0].data_ptr() == attention->parameters()[0].data_ptr());
  CHECK_THROWS_WITH_AS(alibi->forward(torch::randn({1, 33, 8})),
                       doctest::Contains("at most max_sequence_length = 32 tokens, got 33"), std::invalid_argument);
}

TEST_CASE("apply_alibi on a GPT: one position embedding and every attention replaced, once; longer inputs run") {
  torch::manual_seed(4);
  models::GPT gpt(small(3, 8));
  auto adam = std::make_shared<torch::optim::Adam>(gpt->parameters());
  const std::int64_t before = optimizer_tensor_count(*adam);
  const auto report = fn::apply_alibi(*gpt, 32, {adam});
  CHECK(report.count() == 1 + 3);
  CHECK(count_module_instances<mod::AlibiCausalSelfAttentionImpl>(*gpt) == 3);
  CHECK(count_module_instances<models::CausalSelfAttentionImpl>(*gpt) == 0);
  CHECK(count_module_instances<models::PositionEmbeddingImpl>(*gpt) == 0);
  CHECK(optimizer_tensor_count(*adam) == before - 1);  // the position embedding's weight left the optimizer
  CHECK(fn::apply_alibi(*gpt, 32, {adam}).count() == 0);  // idempotent
  // 4x the position embeddings' 8 positions
  CHECK(gpt->forward(torch::zeros({1, 32}, torch::kLong)).sizes() == torch::IntArrayRef({1, 13, 32}));
}

TEST_CASE("Alibi's batch part: [B, S] becomes [B/scaling, S*scaling], row-major, every token keeping its target") {
  const auto inputs = torch::arange(16, torch::kLong).view({2, 8});
  const composer::Batch batch{inputs, inputs + 100};
  const auto scaled = fn::scale_sequence_length(batch, 0.25);
  CHECK(scaled.inputs.sizes() == torch::IntArrayRef({8, 2}));
  CHECK(torch::equal(scaled.inputs[3], torch::tensor({6, 7}, torch::kLong)));
  CHECK(torch::equal(scaled.targets - scaled.inputs, torch::full({8, 2}, 100, torch::kLong)));
  CHECK(fn::scale_sequence_length(batch, 1.0).inputs.sizes() == torch::IntArrayRef({2, 8}));
  CHECK_THROWS_WITH_AS((void)fn::scale_sequence_length({inputs.narrow(1, 0, 6), inputs.narrow(1, 0, 6)}, 0.25),
                       doctest::Contains("does not divide sequences of 6 tokens"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::Alibi(0), doctest::Contains("max_sequence_length must be positive"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::Alibi(64, 1.5), doctest::Contains("train_sequence_length_scaling must be in (0, 1]"),
                       std::invalid_argument);
}

TEST_CASE("a GPT trained with Alibi on sequences of L evaluates on 2L as well as on L") {
  constexpr std::int64_t L = 8;
  torch::manual_seed(5);
  models::GPT gpt(small(2, L));
  composer::Trainer<alg::Alibi> trainer(
      composer::Model(gpt, models::language_model_loss),
      {.train_dataloader = counting_sequences(256, L, 16),
       .max_duration = Time("120ba"),
       .optimizers = {std::make_shared<torch::optim::Adam>(gpt->parameters(), torch::optim::AdamOptions(3e-3))},
       .eval_interval = Time("0ba"),
       .progress_bar = false},
      alg::Alibi(2 * L, 1.0));
  trainer.fit();
  torch::NoGradGuard no_grad;
  gpt->eval();
  auto loss_on = [&](std::int64_t length) {
    const auto tokens = counting_tokens(64, length, 99);
    return models::language_model_loss(gpt->forward(tokens.narrow(1, 0, length)), tokens.narrow(1, 1, length))
        .item<double>();
  };
  const double at_l = loss_on(L), at_2l = loss_on(2 * L);
  MESSAGE("held-out perplexity at L: " << std::exp(at_l) << ", at 2L: " << std::exp(at_2l));
  CHECK(std::exp(at_l) < 2.0);   // learnt (uniform guessing: 13)
  CHECK(std::exp(at_2l) < 2.0);  // and the rule carries over to positions never trained on
  CHECK_THROWS_WITH_AS(gpt->forward(torch::zeros({1, 2 * L + 1}, torch::kLong)),
                       doctest::Contains("at most max_sequence_length = 16"), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------- Gated linear units

TEST_CASE("GatedLinearUnit equals wo(act(W_g x) * (W_ng x)) + b_o") {
  torch::manual_seed(6);
  for (const auto act : {models::Activation::gelu, models::Activation::relu}) {
    mod::GatedLinearUnit glu(4, 6, act);
    const auto x = torch::randn({3, 2, 4});
    auto linear = [&](const char* name) { return glu->slot_module(name)->as<torch::nn::Linear>(); };
    const auto gate = torch::matmul(x, linear("gated_layer")->weight.t());
    const auto value = torch::matmul(x, linear("non_gated_layer")->weight.t());
    const auto activated = act == models::Activation::gelu ? 0.5 * gate * (1 + torch::erf(gate / std::sqrt(2.0)))
                                                           : torch::clamp_min(gate, 0);
    const auto expected = torch::matmul(activated * value, linear("wo")->weight.t()) + linear("wo")->bias;
    CHECK(torch::allclose(glu->forward(x), expected, 1e-5, 1e-6));
    CHECK_FALSE(linear("gated_layer")->bias.defined());  // no biases on the input layers by default
    CHECK_FALSE(linear("non_gated_layer")->bias.defined());
  }
  mod::GatedLinearUnit biased(4, 6, models::Activation::gelu, true, true);
  CHECK(biased->slot_module("gated_layer")->as<torch::nn::Linear>()->bias.defined());
}

TEST_CASE("apply_gated_linear_units on a GPT: every MLP replaced once, the model's activation, the parameter budget") {
  torch::manual_seed(7);
  models::GPTOptions options = small(3);
  options.activation = models::Activation::relu;
  models::GPT gpt(options);
  auto sgd = std::make_shared<torch::optim::SGD>(gpt->parameters(), torch::optim::SGDOptions(0.1));
  const std::int64_t before = parameter_count(*gpt);
  const auto report = fn::apply_gated_linear_units(*gpt, {sgd});
  CHECK(report.count() == 3);
  CHECK(count_module_instances<mod::GatedLinearUnitImpl>(*gpt) == 3);
  CHECK(count_module_instances<models::TransformerMLPImpl>(*gpt) == 0);
  const auto units = composer::surgery::find_modules<mod::GatedLinearUnitImpl>(*gpt);
  CHECK(units[0].module->activation() == models::Activation::relu);
  CHECK(units[0].module->hidden() == 128);
  // per block: an MLP of 32·128 + 128 + 128·32 + 32 became 2·32·128 + 128·32 + 32
  CHECK(parameter_count(*gpt) == before + 3 * ((2 * 32 * 128 + 128 * 32 + 32) - (32 * 128 + 128 + 128 * 32 + 32)));
  CHECK(optimizer_tensor_count(*sgd) == static_cast<std::int64_t>(gpt->parameters().size()));
  CHECK(fn::apply_gated_linear_units(*gpt, {sgd}).count() == 0);
  CHECK(gpt->forward(torch::zeros({2, 5}, torch::kLong)).sizes() == torch::IntArrayRef({2, 13, 5}));
  // the iso-parameter width: round(2/3·512 / 8)·8 = 344; at least 8
  CHECK(fn::gated_linear_unit_hidden(512, true) == 344);
  CHECK(fn::gated_linear_unit_hidden(512, false) == 512);
  CHECK(fn::gated_linear_unit_hidden(4, true) == 8);
  models::GPT other(small(1));
  fn::apply_gated_linear_units(*other, {}, models::Activation::silu, false, false, true);
  const auto shrunk = composer::surgery::find_modules<mod::GatedLinearUnitImpl>(*other);
  CHECK(shrunk[0].module->hidden() == 88);  // 2/3 of 128 = 85.3 -> 88
  CHECK(shrunk[0].module->activation() == models::Activation::silu);
}

// ------------------------------------------------------------------------------------------ Sequence-length warmup

TEST_CASE("seq_length_warmup_length: Composer's schedule, worked by hand") {
  // 100 batches, warmup 0.3 -> W = 30; lengths 8..64 in steps of 8 -> U = 7 updates, one every 30 // 7 = 4 batches
  auto length = [](std::int64_t batch) { return fn::seq_length_warmup_length(batch, 100, 0.3, 8, 64, 8); };
  CHECK(length(0) == 8);
  CHECK(length(3) == 8);
  CHECK(length(4) == 16);
  CHECK(length(27) == 56);
  CHECK(length(28) == 64);
  CHECK(length(99) == 64);
  // (max - min) not a multiple of the step: 8 + 8 at the end of the warmup, max_seq_length later
  CHECK(fn::seq_length_warmup_length(29, 100, 0.3, 8, 20, 8) == 8);
  CHECK(fn::seq_length_warmup_length(30, 100, 0.3, 8, 20, 8) == 16);
  CHECK(fn::seq_length_warmup_length(60, 100, 0.3, 8, 20, 8) == 20);
  // no room for an update: full length at once
  CHECK(fn::seq_length_warmup_length(0, 10, 0.1, 8, 64, 8) == 64);
  CHECK_THROWS_WITH_AS(alg::SeqLengthWarmup(1.5), doctest::Contains("duration must be in [0, 1]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::SeqLengthWarmup({.min_seq_length = 128, .max_seq_length = 64}),
                       doctest::Contains("1 <= min_seq_length <= max_seq_length, got 128 and 64"),
                       std::invalid_argument);
}

TEST_CASE("set_batch_sequence_length: truncation keeps each sequence's start, reshaping keeps every token in order") {
  const auto inputs = torch::arange(12, torch::kLong).view({2, 6});
  const composer::Batch batch{inputs, inputs + 1};
  const auto cut = fn::set_batch_sequence_length(batch, 4, true);
  CHECK(torch::equal(cut.inputs, torch::tensor({0, 1, 2, 3, 6, 7, 8, 9}, torch::kLong).view({2, 4})));
  CHECK(torch::equal(cut.targets, cut.inputs + 1));
  const auto reshaped = fn::set_batch_sequence_length(batch, 4, false);
  CHECK(torch::equal(reshaped.inputs, torch::arange(12, torch::kLong).view({3, 4})));
  const auto dropped_tail = fn::set_batch_sequence_length(batch, 5, false);
  CHECK(torch::equal(dropped_tail.inputs, torch::arange(10, torch::kLong).view({2, 5})));
  CHECK(torch::equal(dropped_tail.targets, dropped_tail.inputs + 1));
  CHECK(fn::set_batch_sequence_length(batch, 6, true).inputs.sizes() == torch::IntArrayRef({2, 6}));
  CHECK(fn::set_batch_sequence_length(batch, 60, false).inputs.data_ptr() == inputs.data_ptr());
  CHECK_THROWS_WITH_AS((void)fn::set_batch_sequence_length({torch::zeros({2, 3, 4}), {}}, 2),
                       doctest::Contains("inputs of shape [B, S], got 3"), std::invalid_argument);
}

namespace {

// Records the sequence length the model sees at every BEFORE_FORWARD and the tokens the clock counted.
struct LengthRecorder {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::BEFORE_FORWARD};
  std::vector<std::int64_t> lengths;
  void apply(composer::Event, composer::State& state) { lengths.push_back(state.batch.inputs.size(1)); }
};

}  // namespace

TEST_CASE("SeqLengthWarmup in a Trainer: the scheduled lengths in batches and in tokens; tokens counted as loaded") {
  torch::manual_seed(8);
  // 6 batches, warmup over half (W = 3), lengths 2..8 in steps of 2 (U = 3, one per batch): 2, 4, 6, 8, 8, 8
  for (const char* duration : {"6ba", "384tok"}) {
    CAPTURE(duration);
    models::GPT gpt(small(1));
    composer::Trainer<alg::SeqLengthWarmup, LengthRecorder> trainer(
        composer::Model(gpt, models::language_model_loss),
        {.train_dataloader = counting_sequences(24, 8, 8),
         .max_duration = Time(duration),
         .optimizers = {std::make_shared<torch::optim::SGD>(gpt->parameters(), torch::optim::SGDOptions(0.01))},
         .eval_interval = Time("0ba"),
         .progress_bar = false},
        alg::SeqLengthWarmup({.duration = 0.5, .min_seq_length = 2, .max_seq_length = 8, .step_size = 2}),
        LengthRecorder{});
    trainer.fit();
    CHECK(trainer.get<LengthRecorder>().lengths == std::vector<std::int64_t>{2, 4, 6, 8, 8, 8});
    // Composer counts a batch's tokens before the methods cut it: 6 batches of 8 x 8
    CHECK(trainer.state().timestamp.token().count() == 6 * 64);
    CHECK(trainer.get<alg::SeqLengthWarmup>().current_length() == 8);
  }
}

// ------------------------------------------------------------------------------------------------ Composition

TEST_CASE("a Trainer composing GatedLinearUnits, Alibi, SeqLengthWarmup and LowPrecisionLayerNorm trains, and its "
          "checkpoint round-trips into a Trainer with the same methods") {
  const std::string folder = fresh_dir("composed");
  using Composed = composer::Trainer<alg::GatedLinearUnits, alg::Alibi, alg::SeqLengthWarmup,
                                     alg::LowPrecisionLayerNorm, alg::LabelSmoothing, alg::GradientClipping>;
  auto methods = [] {
    return std::tuple{alg::GatedLinearUnits(), alg::Alibi(32, 0.5),
                      alg::SeqLengthWarmup({.duration = 0.5, .min_seq_length = 4, .max_seq_length = 16,
                                            .step_size = 4}),
                      alg::LowPrecisionLayerNorm(), alg::LabelSmoothing(0.1), alg::GradientClipping("norm", 1.0)};
  };
  torch::manual_seed(9);
  models::GPT gpt(small(2, 16));
  auto make = [&](models::GPT model, composer::TrainerOptions options) {
    return std::apply(
        [&](auto... algs) { return std::make_unique<Composed>(composer::Model(model, models::language_model_loss),
                                                              std::move(options), algs...); },
        methods());
  };
  auto trainer = make(gpt, {.train_dataloader = counting_sequences(64, 16, 8),
                            .max_duration = Time("8ba"),
                            .optimizers = {std::make_shared<torch::optim::Adam>(gpt->parameters())},
                            .eval_interval = Time("0ba"),
                            .save_folder = folder,
                            .save_interval = Time("8ba"),
                            .progress_bar = false});
  CHECK(count_module_instances<mod::GatedLinearUnitImpl>(*gpt) == 2);
  CHECK(count_module_instances<mod::AlibiCausalSelfAttentionImpl>(*gpt) == 2);
  CHECK(count_module_instances<models::PositionEmbeddingImpl>(*gpt) == 0);
  CHECK(count_module_instances<torch::nn::LayerNormImpl>(*gpt) == 5);  // fp32 on the CPU: LayerNorms kept
  trainer->fit();
  CHECK(trainer->state().timestamp.batch().count() == 8);
  CHECK(std::isfinite(trainer->state().loss.item<double>()));
  // Alibi halves the sequences (16 -> 8 tokens, twice the rows), then SeqLengthWarmup cuts them to its schedule;
  // the clock counted the 8 x 16 tokens of each batch as loaded
  CHECK(trainer->state().timestamp.token().count() == 8 * 8 * 16);
  std::vector<torch::Tensor> trained;
  for (const auto& p : gpt->parameters()) trained.push_back(p.detach().clone());
  const std::vector<std::string> names = gpt->named_parameters().keys();
  trainer.reset();

  torch::manual_seed(10);
  models::GPT fresh(small(2, 16));
  auto resumed = make(fresh, {.train_dataloader = counting_sequences(64, 16, 8),
                              .max_duration = Time("8ba"),
                              .optimizers = {std::make_shared<torch::optim::Adam>(fresh->parameters())},
                              .load_path = io::join(folder, "ep0-ba8-rank0.pt"),
                              .progress_bar = false});
  CHECK(fresh->named_parameters().keys() == names);
  const auto loaded = fresh->parameters();
  REQUIRE(loaded.size() == trained.size());
  for (std::size_t i = 0; i < trained.size(); ++i) CHECK(torch::equal(loaded[i], trained[i]));
  CHECK(resumed->state().timestamp.token().count() == 8 * 8 * 16);
  io::remove_all(folder);
}

TEST_CASE("the transformer methods compose with EMA and LayerFreezing: the average covers the gated, ALiBi model and "
          "the earliest layers freeze") {
  torch::manual_seed(11);
  models::GPT gpt(small(2, 16));
  composer::Trainer<alg::GatedLinearUnits, alg::Alibi, alg::SeqLengthWarmup, alg::EMA, alg::LayerFreezing> trainer(
      composer::Model(gpt, models::language_model_loss),
      {.train_dataloader = counting_sequences(32, 16, 8),  // 4 batches per epoch
       .max_duration = Time("4ep"),
       .optimizers = {std::make_shared<torch::optim::Adam>(gpt->parameters())},
       .eval_interval = Time("0ba"),
       .progress_bar = false},
      alg::GatedLinearUnits(), alg::Alibi(32, 1.0),
      alg::SeqLengthWarmup({.duration = 0.5, .min_seq_length = 4, .max_seq_length = 16, .step_size = 4}),
      alg::EMA({.half_life = Time("4ba")}), alg::LayerFreezing({.freeze_start = 0.25, .freeze_level = 1.0}));
  trainer.fit();
  CHECK(std::isfinite(trainer.state().loss.item<double>()));
  // EMA averages the model as the surgery left it: the same parameter names, gated units and all
  const auto& ema = trainer.get<alg::EMA>();
  REQUIRE(ema.ema_started());
  const auto averaged = ema.ema_parameters().named_parameters().keys();
  CHECK(averaged == gpt->named_parameters().keys());
  CHECK(std::find(averaged.begin(), averaged.end(), "blocks.0.mlp.gated_layer.weight") != averaged.end());
  // at the end (elapsed 1, level 1) every leaf layer with parameters but the last is frozen: of the token
  // embedding, 2 x 7 per block (ln_1, qkv, proj, ln_2 and the gated unit's three layers) and ln_f, all but ln_f;
  // their parameters: 1 + 2 x (2 + 2 + 2 + 2 + 1 + 1 + 2) = 25
  std::int64_t frozen = 0;
  for (const auto& p : gpt->parameters()) frozen += p.requires_grad() ? 0 : 1;
  CHECK(frozen == 25);
  CHECK_FALSE(gpt->named_parameters()["token_embedding.weight"].requires_grad());
  CHECK(gpt->named_parameters()["ln_f.weight"].requires_grad());
}
