// Layer-replacing methods: ghost batch norm, factorization, weight standardization, gyro dropout and the
// low-precision norms (their functional forms and policies; their modules: tests/modules), on ResNet-20 and small
// slot models.
#include <torch/torch.h>

#include <composer/algorithms/factorize.hpp>
#include <composer/algorithms/ghost_batchnorm.hpp>
#include <composer/algorithms/gyro_dropout.hpp>
#include <composer/algorithms/low_precision_groupnorm.hpp>
#include <composer/algorithms/low_precision_layernorm.hpp>
#include <composer/algorithms/weight_standardization.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/functional/factorize.hpp>
#include <composer/functional/ghost_batchnorm.hpp>
#include <composer/functional/gyro_dropout.hpp>
#include <composer/functional/low_precision_groupnorm.hpp>
#include <composer/functional/low_precision_layernorm.hpp>
#include <composer/functional/weight_standardization.hpp>
#include <composer/models/resnet.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/slot_models.hpp"

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace alg = composer::algorithms;
namespace fn = composer::functional;
namespace mod = composer::modules;
using composer::Time;
using composer::surgery::count_module_instances;
using composer_test::check_optimizer_trains;
using composer_test::GroupNet;
using composer_test::make_sgd;
using composer_test::Mlp;

composer::data::TensorLoader image_loader(std::int64_t samples, std::int64_t batch) {
  torch::manual_seed(7);
  auto x = torch::randn({samples, 1, 8, 8});
  auto y = torch::randint(0, 10, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, false, false, 0});
}

composer::data::TensorLoader vector_loader(std::int64_t samples, std::int64_t batch) {
  torch::manual_seed(8);
  auto x = torch::randn({samples, 6});
  auto y = torch::randint(0, 3, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, false, false, 0});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Ghost batch norm

TEST_CASE("layer_methods: ghost batch norm wraps all 21 batch norms of ResNet-20 and keeps training them") {
  torch::manual_seed(0);
  auto net = composer::models::resnet20({.in_channels = 1});
  auto opt = make_sgd(*net);
  const auto report = fn::apply_ghost_batchnorm(*net, 4, {opt});
  CHECK(report.count() == 21);
  CHECK(count_module_instances<mod::GhostBatchNorm2dImpl>(*net) == 21);
  CHECK(fn::apply_ghost_batchnorm(*net, 4).count() == 0);  // already wrapped
  check_optimizer_trains(*net, *opt, torch::randn({8, 1, 8, 8}));
  CHECK_THROWS_AS(fn::apply_ghost_batchnorm(*net, 0), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------------
// Factorization

TEST_CASE("layer_methods: factorization picks the wide layers of ResNet-20 that save compute") {
  torch::manual_seed(2);
  auto net = composer::models::resnet20({.in_channels = 1});
  auto opt = make_sgd(*net);
  // min_channels = 32, latent 0.25: convolutions with min(in, out) >= 32 are those of stage 2 after its first
  // block's first conv (16 -> 32): 5 of 32 -> 32; stage 3: its first conv 32 -> 64, its 1x1 shortcut 32 -> 64 and
  // 5 of 64 -> 64 — 12 in all; each latent size (8 or 16) is far below the break-even (e.g. 32·9·32/(288+32) = 28.8
  // → 27). The classifier 64 -> 10 with min_features = 8: latent int(0.25·10) = 2 ≤ ceil(640/74 − 1) = 8, so it
  // is factorized too: 13.
  const auto report = fn::apply_factorization(*net, true, true, 32, 0.25, 8, 0.25, {opt});
  CHECK(report.count() == 13);
  CHECK(count_module_instances<mod::FactorizedConv2dImpl>(*net) == 12);
  CHECK(count_module_instances<mod::FactorizedLinearImpl>(*net) == 1);
  check_optimizer_trains(*net, *opt, torch::randn({4, 1, 8, 8}));
  // Applying again changes nothing: the inner layers are too narrow or already inside factorized modules.
  CHECK(fn::apply_factorization(*net, true, true, 32, 0.25, 8, 0.25).count() == 0);
  CHECK_THROWS_AS(fn::apply_factorization(*net, true, true, 32, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(fn::apply_factorization(*net, true, true, 32, -0.5), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------------
// Weight standardization

TEST_CASE("layer_methods: weight standardization wraps ResNet-20's convolutions, all but the last n") {
  torch::manual_seed(4);
  auto net = composer::models::resnet20({.in_channels = 1});
  auto params = net->parameters();
  CHECK(fn::apply_weight_standardization(*net).count() == 21);
  CHECK(net->parameters().size() == params.size());
  CHECK(count_module_instances<mod::WSConv2dImpl>(*net) == 21);
  auto opt = make_sgd(*net);  // built after the surgery: the standardised convolutions' parameters
  check_optimizer_trains(*net, *opt, torch::randn({4, 1, 8, 8}));

  auto other = composer::models::resnet20({.in_channels = 1});
  CHECK(fn::apply_weight_standardization(*other, 2).count() == 19);
  CHECK(fn::apply_weight_standardization(*other, 0).count() == 2);  // the rest, once
  CHECK(fn::apply_weight_standardization(*other, 0).count() == 0);
  CHECK_THROWS_AS(fn::apply_weight_standardization(*other, -1), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------------
// Gyro dropout

TEST_CASE("layer_methods: gyro dropout replaces Dropout layers and follows Composer's mask schedule") {
  torch::manual_seed(5);
  auto mlp = Mlp();
  CHECK(fn::apply_gyro_dropout(*mlp, 64, 1, 0.5, 8, 4).count() == 1);
  auto net = composer::models::resnet20({.in_channels = 1, .dropout = 0.2});
  CHECK(fn::apply_gyro_dropout(*mlp, 64, 1, 0.5, 8, 4).count() == 0);  // already replaced
  CHECK_THROWS_AS(fn::apply_gyro_dropout(*net, 64, 1, 1.0, 8, 4), std::invalid_argument);
  CHECK_THROWS_AS(fn::apply_gyro_dropout(*net, 64, 1, -0.1, 8, 4), std::invalid_argument);
  CHECK_THROWS_AS(fn::apply_gyro_dropout(*net, 64, 1, 0.5, 256, 16), std::invalid_argument);  // 64 < sigma
  CHECK(fn::apply_gyro_dropout(*net, 256, 1, 0.5, 256, 16).count() == 1);

  // iter_num = int(64 · 1 / 8) · 4 = 32: the same 4 masks for 32 training passes, then a new draw.
  mod::GyroDropout gyro(mod::GyroDropoutOptions{.iters_per_epoch = 64, .max_epoch = 1, .p = 0.5, .sigma = 8, .tau = 4});
  gyro->train();
  const auto x = torch::ones({8, 2000});
  const auto y = gyro->forward(x);
  CHECK(gyro->state().iter_num == 32);
  const double dropped = (y == 0).to(torch::kDouble).mean().item<double>();
  CHECK(dropped == doctest::Approx(0.5).epsilon(0.1));
  CHECK(torch::allclose(y.masked_select(y != 0), torch::full({1}, 2.0)));  // kept entries scaled by 1/(1 − p)
  for (int g = 0; g < 4; ++g) CHECK(torch::equal(y[2 * g], y[2 * g + 1]));  // groups of N / tau rows share a mask
  const auto selected = gyro->state().selected_masks.clone();
  for (int step = 1; step < 32; ++step) gyro->forward(x);
  CHECK(torch::equal(gyro->state().selected_masks, selected));
  for (int row = 0; row < 4; ++row) {  // each active mask is one of the pre-selected ones
    bool found = false;
    for (int k = 0; k < 8; ++k) found = found || torch::equal(selected[row], gyro->state().preselect_masks[k]);
    CHECK(found);
  }
  gyro->forward(x);  // the 33rd pass draws again
  CHECK(gyro->state().training_step == 33);
  gyro->eval();
  CHECK(torch::equal(gyro->forward(x), x));
}

TEST_CASE("layer_methods: the gyro dropout policy's state survives a checkpoint round trip") {
  torch::manual_seed(6);
  auto net = Mlp();
  composer::State state(composer::Model(net), Time("1ep"));
  state.dataloader_len = 8;
  const composer::Logger logger;
  alg::GyroDropout policy(0.5, 4, 2);
  policy.apply(composer::EventTag<composer::Event::FIT_START>{}, state, logger);
  CHECK(policy.last_report().count() == 1);
  REQUIRE(policy.layers().size() == 1);
  net->train();
  for (int i = 0; i < 3; ++i) net->forward(torch::randn({4, 6}));
  torch::serialize::OutputArchive out;
  policy.save_state(out);
  std::stringstream buffer;
  out.save_to(buffer);

  auto fresh = Mlp();
  composer::State fresh_state(composer::Model(fresh), Time("1ep"));
  fresh_state.dataloader_len = 8;
  alg::GyroDropout restored(0.5, 4, 2);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  restored.load_state(in);  // no gyro layer yet: kept until the surgery
  restored.apply(composer::EventTag<composer::Event::FIT_START>{}, fresh_state, logger);
  REQUIRE(restored.layers().size() == 1);
  const auto& a = policy.layers()[0]->state();
  const auto& b = restored.layers()[0]->state();
  CHECK(b.training_step == 3);
  CHECK(b.iter_num == a.iter_num);
  CHECK(torch::equal(a.preselect_masks, b.preselect_masks));
  CHECK(torch::equal(a.selected_masks, b.selected_masks));
}

// ---------------------------------------------------------------------------------------------------------------
// Low-precision norms

TEST_CASE("layer_methods: the shared low-precision norm surgery replaces only its own kind, once, under amp only") {
  torch::manual_seed(9);
  auto mlp = Mlp();
  auto gnet = GroupNet();
  // the group-norm surgery finds no GroupNorm in the MLP; the layer-norm surgery none in the conv net
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*mlp, composer::Precision::amp_bf16, {}).count() == 0);
  CHECK(fn::apply_low_precision_norm<mod::LPLayerNormImpl>(*gnet, composer::Precision::amp_fp16, {}).count() == 0);
  CHECK(count_module_instances<torch::nn::LayerNormImpl>(*mlp) == 1);
  // fp32: nothing changes
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*gnet, composer::Precision::fp32, {}).count() == 0);
  CHECK(count_module_instances<mod::LPGroupNormImpl>(*gnet) == 0);
  // amp: the norm is replaced, its parameter tensors kept; a second pass finds it already replaced
  const auto weight = gnet->named_parameters()["norm.weight"];
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*gnet, composer::Precision::amp_fp16, {}).count() == 1);
  CHECK(count_module_instances<mod::LPGroupNormImpl>(*gnet) == 1);
  CHECK(count_module_instances<mod::LPLayerNormImpl>(*gnet) == 0);
  CHECK(gnet->named_parameters()["norm.weight"].unsafeGetTensorImpl() == weight.unsafeGetTensorImpl());
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*gnet, composer::Precision::amp_fp16, {}).count() == 0);
}

TEST_CASE("layer_methods: LowPrecisionLayerNorm and LowPrecisionGroupNorm keep their names, placements and checks") {
  static_assert(!std::is_same_v<alg::LowPrecisionLayerNorm, alg::LowPrecisionGroupNorm>);
  static_assert(composer::placement_of<alg::LowPrecisionLayerNorm> == composer::Placement::last);
  static_assert(composer::placement_of<alg::LowPrecisionGroupNorm> == composer::Placement::declared);
  CHECK(std::string(alg::LowPrecisionLayerNorm::name) == "LowPrecisionLayerNorm");
  CHECK(std::string(alg::LowPrecisionGroupNorm::name) == "LowPrecisionGroupNorm");
  CHECK(alg::LowPrecisionLayerNorm().options().apply_at == composer::Event::INIT);
  CHECK(alg::LowPrecisionGroupNorm(composer::Event::AFTER_LOAD).options().apply_at == composer::Event::AFTER_LOAD);
  const alg::LowPrecisionGroupNormOptions before_load{.apply_at = composer::Event::BEFORE_LOAD};
  CHECK(alg::LowPrecisionGroupNorm(before_load).options().apply_at == composer::Event::BEFORE_LOAD);
  CHECK_THROWS_WITH_AS(alg::LowPrecisionLayerNorm(composer::Event::FIT_START),
                       doctest::Contains("LowPrecisionLayerNorm apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::LowPrecisionGroupNorm({.apply_at = composer::Event::BATCH_END}),
                       doctest::Contains("LowPrecisionGroupNorm apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD"),
                       std::invalid_argument);
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({5}));
  torch::nn::GroupNorm gn(torch::nn::GroupNormOptions(2, 4));
  CHECK(mod::LPLayerNorm(*ln)->name() == "LPLayerNorm");
  CHECK(mod::LPGroupNorm(*gn)->name() == "LPGroupNorm");
  CHECK(mod::LPGroupNormImpl::from_groupnorm(*gn)->options.num_groups() == 2);
  CHECK(mod::LPLayerNormImpl::from_layernorm(*ln)->options.normalized_shape() == std::vector<std::int64_t>{5});
}

// ---------------------------------------------------------------------------------------------------------------
// Policies in the Trainer

TEST_CASE("layer_methods: each policy trains a few batches in the Trainer") {
  SUBCASE("GhostBatchNorm") {
    auto net = composer::models::resnet20({.in_channels = 1});
    composer::Trainer<alg::GhostBatchNorm> trainer(
        net, {.train_dataloader = image_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::GhostBatchNorm({.ghost_batch_size = 4}));
    CHECK(trainer.get<alg::GhostBatchNorm>().last_report().count() == 21);
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
  SUBCASE("Factorize") {
    auto net = composer::models::resnet20({.in_channels = 1});
    composer::Trainer<alg::Factorize> trainer(
        net, {.train_dataloader = image_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::Factorize({.min_channels = 32, .min_features = 8, .latent_features = 0.25}));
    CHECK(trainer.get<alg::Factorize>().last_report().count() == 13);
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
  SUBCASE("WeightStandardization") {
    auto net = composer::models::resnet20({.in_channels = 1});
    composer::Trainer<alg::WeightStandardization> trainer(
        net, {.train_dataloader = image_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::WeightStandardization({.n_last_layers_ignore = 1}));
    CHECK(trainer.get<alg::WeightStandardization>().last_report().count() == 20);
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
  SUBCASE("GyroDropout") {
    auto net = Mlp();
    composer::Trainer<alg::GyroDropout> trainer(
        net, {.train_dataloader = vector_loader(64, 8), .max_duration = Time("1ep"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::GyroDropout(0.5, 4, 2));
    trainer.fit();
    CHECK(trainer.get<alg::GyroDropout>().last_report().count() == 1);
    REQUIRE(trainer.get<alg::GyroDropout>().layers().size() == 1);
    CHECK(trainer.get<alg::GyroDropout>().layers()[0]->state().training_step == 8);
    CHECK(trainer.get<alg::GyroDropout>().layers()[0]->state().iter_num == 4);  // int(8·1/4)·2
  }
  SUBCASE("LowPrecisionLayerNorm and LowPrecisionGroupNorm leave fp32 training alone") {
    auto net = Mlp();
    composer::Trainer<alg::LowPrecisionLayerNorm, alg::LowPrecisionGroupNorm> trainer(
        net, {.train_dataloader = vector_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false});
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
}
