// The model-surgery methods in a Trainer on a CUDA device (needs one): BlurPool, ChannelsLast, SqueezeExcite,
// StochasticDepth, GhostBatchNorm, Factorize, WeightStandardization, GyroDropout, LowPrecisionLayerNorm and
// LowPrecisionGroupNorm, each alone with the data on the CPU in fp32 and on the GPU in amp_bf16: the surgery at INIT
// happens after the model moved to the device, so every module it adds must be put there too, and the optimizer
// must step the new parameters on the device. Then the example's resnet preset in amp_bf16 and amp_fp16.
#include "trainer_cuda_support.hpp"

#include <composer/algorithms/blurpool.hpp>
#include <composer/algorithms/channels_last.hpp>
#include <composer/algorithms/factorize.hpp>
#include <composer/algorithms/ghost_batchnorm.hpp>
#include <composer/algorithms/gyro_dropout.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/low_precision_groupnorm.hpp>
#include <composer/algorithms/low_precision_layernorm.hpp>
#include <composer/algorithms/squeeze_excite.hpp>
#include <composer/algorithms/stochastic_depth.hpp>
#include <composer/algorithms/weight_standardization.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace cuda_trainer_test;
namespace alg = composer::algorithms;

namespace {

/// Trains the ResNet-8 with `algs` under each setup (see check_method).
template <class Extra, class... Algs>
void check_resnet(const std::vector<Setup>& setups, std::int64_t batches, Extra&& extra, const Algs&... algs) {
  check_method([] { return make_resnet(); }, setups, batches, std::forward<Extra>(extra), algs...);
}

/// A check that policy `P` replaced at least one module at INIT.
template <class P>
auto replaced_some() {
  return [](auto& trainer) { CHECK(trainer.template get<P>().last_report().count() > 0); };
}

}  // namespace

TEST_CASE("cuda trainer: BlurPool") {
  check_resnet(float_setups(), 3, replaced_some<alg::BlurPool>(), alg::BlurPool({.min_channels = 8}));
  check_resnet(float_setups(), 3, replaced_some<alg::BlurPool>(),
               alg::BlurPool({.blur_first = false, .min_channels = 8}));
}

TEST_CASE("cuda trainer: ChannelsLast keeps the 4-D weights channels-last on the device") {
  auto channels_last = [](auto& trainer) {
    CHECK(trainer.template get<alg::ChannelsLast>().converted() > 0);
    for (const auto& p : trainer.state().model->parameters())
      if (p.dim() == 4) CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
  };
  check_resnet(float_setups(), 3, channels_last, alg::ChannelsLast());
}

TEST_CASE("cuda trainer: SqueezeExcite") {
  check_resnet(float_setups(), 3, replaced_some<alg::SqueezeExcite>(),
               alg::SqueezeExcite({.latent_channels = 0.5, .min_channels = 16}));
}

TEST_CASE("cuda trainer: StochasticDepth, per block and per sample") {
  auto stochastic = [](auto& trainer) { CHECK(trainer.template get<alg::StochasticDepth>().num_stochastic_layers() == 3); };
  check_resnet(float_setups(), 4, stochastic, alg::StochasticDepth({.drop_rate = 0.3, .drop_warmup = 0.5}));
  check_resnet(float_setups(), 4, stochastic, alg::StochasticDepth({.stochastic_method = "sample", .drop_rate = 0.3}));
}

TEST_CASE("cuda trainer: GhostBatchNorm") {
  check_resnet(float_setups(), 3, replaced_some<alg::GhostBatchNorm>(), alg::GhostBatchNorm({.ghost_batch_size = 4}));
}

TEST_CASE("cuda trainer: Factorize") {
  check_resnet(float_setups(), 3, replaced_some<alg::Factorize>(),
               alg::Factorize({.min_channels = 32, .latent_channels = 0.25, .min_features = 8, .latent_features = 0.25}));
}

TEST_CASE("cuda trainer: WeightStandardization") {
  check_resnet(float_setups(), 3, replaced_some<alg::WeightStandardization>(),
               alg::WeightStandardization({.n_last_layers_ignore = 1}));
}

TEST_CASE("cuda trainer: GyroDropout") {
  auto gyro = [](auto& trainer) {
    const auto& policy = trainer.template get<alg::GyroDropout>();
    CHECK(policy.last_report().count() == 1);
    for (const auto& layer : policy.layers())
      for (const auto& b : layer->buffers()) CHECK(b.device() == cuda0());
  };
  check_method([] { return make_resnet(0.25); }, float_setups(), 4, gyro, alg::GyroDropout(0.5, 4, 2));
}

TEST_CASE("cuda trainer: LowPrecisionLayerNorm and LowPrecisionGroupNorm replace the norms under amp only") {
  for (Precision precision : {Precision::amp_bf16, Precision::amp_fp16, Precision::fp32}) {
    for (DataOn data : {DataOn::cpu, DataOn::gpu}) {
      const std::vector<Setup> setup = {{data, precision, at::kFloat, 0}};
      const std::size_t expected = effective(precision) == Precision::fp32 ? 0 : 1;
      auto replaced = [expected](auto& trainer) {
        CHECK(trainer.template get<alg::LowPrecisionLayerNorm>().last_report().count() == expected);
        CHECK(trainer.template get<alg::LowPrecisionGroupNorm>().last_report().count() == expected);
      };
      check_method([] {
        torch::manual_seed(0);
        return NormNet();
      }, setup, 3, replaced, alg::LowPrecisionLayerNorm(), alg::LowPrecisionGroupNorm());
    }
  }
}

TEST_CASE("cuda trainer: the resnet preset (BlurPool, ChannelsLast, SqueezeExcite, StochasticDepth, LabelSmoothing)") {
  const std::vector<Setup> setups = {{DataOn::cpu, Precision::fp32, at::kFloat, 0},
                                     {DataOn::cpu, Precision::amp_bf16, at::kFloat, 0},
                                     {DataOn::gpu, Precision::amp_bf16, at::kFloat, 4},
                                     {DataOn::gpu, Precision::amp_fp16, at::kFloat, 0}};
  check_resnet(setups, 4, no_extra_checks, alg::BlurPool({.min_channels = 8}), alg::ChannelsLast(),
               alg::SqueezeExcite({.latent_channels = 0.25, .min_channels = 32}),
               alg::StochasticDepth({.drop_rate = 0.1}), alg::LabelSmoothing(0.1));
}

TEST_CASE("cuda trainer: the ten surgery methods on one model") {
  check_method([] { return make_resnet(0.25); }, float_setups(), 4, no_extra_checks,
               alg::BlurPool({.min_channels = 8}), alg::SqueezeExcite({.latent_channels = 0.5, .min_channels = 32}),
               alg::GhostBatchNorm({.ghost_batch_size = 4}),
               // (linears stay: SqueezeExcite's gates keep their Linear layers in a Sequential, which has no slots)
               alg::Factorize({.factorize_linears = false, .min_channels = 32, .latent_channels = 0.25}),
               alg::WeightStandardization({.n_last_layers_ignore = 1}), alg::StochasticDepth({.drop_rate = 0.2}),
               alg::GyroDropout({.p = 0.5, .sigma = 4, .tau = 2}), alg::LowPrecisionLayerNorm(), alg::LowPrecisionGroupNorm(),
               alg::ChannelsLast());
}
