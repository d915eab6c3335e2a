// All ten model-surgery methods and a batch method (MixUp) composed in one Trainer on a ResNet.
#include <torch/torch.h>

#include <composer/algorithms.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/models/resnet.hpp>
#include <composer/modules/blurpool.hpp>
#include <composer/modules/factorize.hpp>
#include <composer/modules/ghost_batchnorm.hpp>
#include <composer/modules/gyro_dropout.hpp>
#include <composer/modules/squeeze_excite.hpp>
#include <composer/modules/stochastic_depth.hpp>
#include <composer/modules/weight_standardization.hpp>
#include <composer/surgery.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

namespace alg = composer::algorithms;
namespace mod = composer::modules;
using composer::surgery::count_module_instances;

TEST_CASE("Trainer<all ten surgery methods, MixUp> changes a ResNet and trains it") {
  torch::manual_seed(7);
  // ResNet-8 (one block per stage), width 16, with dropout before the classifier for GyroDropout.
  composer::models::ResNet net(composer::models::ResNetOptions{
      .blocks_per_stage = {1, 1, 1}, .width = 16, .in_channels = 1, .num_classes = 10, .dropout = 0.2});
  // Before: stem + 3 blocks x 2 + 2 projection shortcuts = 9 convolutions, and 9 batch norms.
  REQUIRE(count_module_instances<torch::nn::Conv2dImpl>(*net) == 9);
  REQUIRE(count_module_instances<torch::nn::BatchNorm2dImpl>(*net) == 9);
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  std::vector<at::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.detach().clone());

  auto x = torch::rand({32, 1, 12, 12});
  auto y = torch::randint(0, 10, {32});
  composer::data::TensorLoader loader(x, y, composer::data::TensorLoaderOptions{8, true, false, 1});

  composer::Trainer<alg::BlurPool, alg::SqueezeExcite, alg::GhostBatchNorm, alg::Factorize,
                    alg::WeightStandardization, alg::StochasticDepth, alg::GyroDropout, alg::LowPrecisionLayerNorm,
                    alg::LowPrecisionGroupNorm, alg::ChannelsLast, alg::MixUp>
      trainer(net,
              {.train_dataloader = std::move(loader), .max_duration = composer::Time("2ep"), .optimizers = {sgd},
               .seed = 3, .progress_bar = false},
              alg::BlurPool(), alg::SqueezeExcite({.latent_channels = 0.25, .min_channels = 16}),
              alg::GhostBatchNorm({.ghost_batch_size = 4}),
              // (linears stay: SqueezeExcite's gate keeps its Linear layers in a Sequential, which has no slots)
              alg::Factorize({.factorize_linears = false, .min_channels = 32, .latent_channels = 0.25}),
              alg::WeightStandardization(), alg::StochasticDepth({.drop_rate = 0.2}),
              alg::GyroDropout({.p = 0.5, .sigma = 8, .tau = 4}), alg::LowPrecisionLayerNorm(),
              alg::LowPrecisionGroupNorm(), alg::ChannelsLast(), alg::MixUp(0.2));

  // The surgeries at INIT: each method found its modules.
  // the strided convolutions entering stages 2 and 3: each block's first 3x3 and its 1x1 projection
  CHECK(count_module_instances<mod::BlurConv2dImpl>(*net) == 4);
  CHECK(count_module_instances<mod::SqueezeExciteConv2dImpl>(*net) > 0);
  CHECK(count_module_instances<mod::GhostBatchNorm2dImpl>(*net) == 9);
  CHECK(count_module_instances<mod::FactorizedConv2dImpl>(*net) > 0);
  CHECK(count_module_instances<mod::WSConv2dImpl>(*net) > 0);
  CHECK(count_module_instances<mod::StochasticBasicBlockImpl>(*net) == 3);
  CHECK(count_module_instances<torch::nn::BatchNorm2dImpl>(*net) == 9);  // inside the ghost batch norms
  for (const auto& p : net->parameters())
    if (p.dim() == 4) CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
  // Every parameter the model has now is one the optimizer trains.
  std::size_t in_optimizer = 0;
  for (const auto& group : sgd->param_groups()) in_optimizer += group.params().size();
  CHECK(in_optimizer == net->parameters().size());

  trainer.fit();
  // GyroDropout acts from FIT_START.
  CHECK(count_module_instances<mod::GyroDropoutImpl>(*net) == 1);
  CHECK(trainer.state().timestamp.batch().count() == 8);
  CHECK(std::isfinite(trainer.state().loss.item<double>()));
  net->eval();
  CHECK(torch::isfinite(net->forward(torch::rand({2, 1, 12, 12}))).all().item<bool>());
  // The parameters that survived surgery (the classifier's bias, at least) moved.
  bool moved = false;
  const auto after = net->parameters();
  for (const auto& b : before)
    for (const auto& a : after)
      if (a.sizes() == b.sizes() && !torch::equal(a.detach().contiguous(), b)) moved = true;
  CHECK(moved);
}
