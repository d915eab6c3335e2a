// The Trainer on a CUDA device (needs one): the plain loop in fp32, amp_bf16 and amp_fp16 with microbatches,
// evaluation and prediction; each method that changes the batch or the loss (MixUp, CutMix, CutOut, ColOut,
// LabelSmoothing, ProgressiveResizing, SelectiveBackprop, AugMix, RandAugment, NormalizeInputs) alone and in the
// example's presets, with the data on the CPU (the Trainer moves each microbatch) and on the GPU (the methods of
// AFTER_DATALOADER then see device tensors); and the fused batch transform, which runs on the CPU batch before it
// is moved, feeding a CUDA model the same batches as the eager transforms.
// The model-surgery methods are in test_trainer_cuda_model.cpp; the optimizer methods and checkpoints moving
// between devices in test_trainer_cuda_optim.cpp.
#include "trainer_cuda_support.hpp"

#include <composer/algorithms/augmix.hpp>
#include <composer/algorithms/colout.hpp>
#include <composer/algorithms/cutmix.hpp>
#include <composer/algorithms/cutout.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/mixup.hpp>
#include <composer/algorithms/normalize_inputs.hpp>
#include <composer/algorithms/progressive_resizing.hpp>
#include <composer/algorithms/randaugment.hpp>
#include <composer/algorithms/selective_backprop.hpp>

#include <exception>
#include <string>
#include <vector>

using namespace cuda_trainer_test;
namespace alg = composer::algorithms;

namespace {

/// Trains the small CNN with `algs` under each setup (see check_method).
template <class Extra, class... Algs>
void check_cnn(const std::vector<Setup>& setups, std::int64_t batches, Extra&& extra, const Algs&... algs) {
  check_method([] { return make_cnn(); }, setups, batches, std::forward<Extra>(extra), algs...);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// The plain loop

TEST_CASE("cuda trainer: the plain loop in fp32, amp_bf16 and amp_fp16, with microbatches, eval and predict") {
  require_cuda();
  for (Precision precision : {Precision::fp32, Precision::amp_bf16, Precision::amp_fp16}) {
    for (DataOn data : {DataOn::cpu, DataOn::gpu}) {
      INFO(precision_name(precision) << ", " << data_name(data));
      auto net = make_cnn();
      auto options = run_options(*net, image_loader(data), "2ep", cuda0(), precision);
      options.eval_dataloader = image_loader(data, 12, 6);
      options.device_train_microbatch_size = 4;
      composer::Trainer<Probe> trainer(net, std::move(options));
      trainer.fit();
      check_trained_on(trainer, cuda0(), 8, output_dtype_of(precision));
      CHECK(trainer.template get<Probe>().losses.size() == 16);  // 8 batches of 2 microbatches
      const auto& metrics = trainer.state().eval_metric_values.at("eval");
      CHECK(metrics.at("accuracy") >= 0.0);
      CHECK(metrics.at("accuracy") <= 1.0);
      CHECK(std::isfinite(metrics.at("cross_entropy")));
      const auto outputs = trainer.predict(image_loader(data, 12, 6));
      REQUIRE(outputs.size() == 2);
      for (const auto& o : outputs) {
        CHECK(o.device().is_cpu());
        CHECK(o.sizes() == at::IntArrayRef({6, kClasses}));
        CHECK(torch::isfinite(o).all().item<bool>());
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Each batch method alone

TEST_CASE("cuda trainer: MixUp") {
  check_cnn(float_setups(), 4, no_extra_checks, alg::MixUp(0.2));
  check_cnn(float_setups(), 4, no_extra_checks, alg::MixUp(1.0, /*interpolate_loss=*/true));
}

TEST_CASE("cuda trainer: CutMix") {
  check_cnn(float_setups(), 4, no_extra_checks, alg::CutMix());
  check_cnn(float_setups(), 4, no_extra_checks, alg::CutMix(1.0, /*interpolate_loss=*/true, /*uniform_sampling=*/true));
}

TEST_CASE("cuda trainer: CutOut") {
  check_cnn(float_setups(), 4, no_extra_checks, alg::CutOut(2, 0.25));
}

TEST_CASE("cuda trainer: ColOut drops rows and columns") {
  auto smaller = [](auto& trainer) {
    for (const auto& shape : trainer.template get<Probe>().input_shapes) {
      CHECK(shape[2] < 16);
      CHECK(shape[3] < 16);
    }
  };
  check_cnn(float_setups(), 4, smaller, alg::ColOut(0.25, 0.25));
  check_cnn(float_setups(), 4, no_extra_checks, alg::ColOut(0.25, 0.25, /*batch=*/false));
}

TEST_CASE("cuda trainer: LabelSmoothing") {
  check_cnn(float_setups(), 4, no_extra_checks, alg::LabelSmoothing(0.1));
}

TEST_CASE("cuda trainer: ProgressiveResizing trains on smaller images first") {
  // 4 batches: elapsed 0 and 0.25 are within the delay (scale 0.5: 8x8), the last batch is at full size
  auto growing = [](auto& trainer) {
    const auto& shapes = trainer.template get<Probe>().input_shapes;
    REQUIRE_FALSE(shapes.empty());
    CHECK(shapes.front()[3] == 8);
    CHECK(shapes.back()[3] == 16);
  };
  check_cnn(float_setups(), 4, growing, alg::ProgressiveResizing());
  check_cnn(float_setups(), 4, growing, alg::ProgressiveResizing({.mode = "crop", .initial_scale = 0.5}));
}

TEST_CASE("cuda trainer: SelectiveBackprop scores with the model on the device and keeps half of each batch") {
  auto halved = [](auto& trainer) {
    std::int64_t samples = 0;
    for (const auto& shape : trainer.template get<Probe>().input_shapes) samples += shape[0];
    CHECK(samples == 4 * 4);  // 4 batches of 8, each cut to 4
  };
  check_cnn(float_setups(), 4, halved,
                     alg::SelectiveBackprop({.start = 0.0, .end = 1.0, .keep = 0.5, .interrupt = 0}));
  // scoring on downscaled images
  check_cnn(float_setups(), 4, halved,
                     alg::SelectiveBackprop({.start = 0.0, .end = 1.0, .keep = 0.5, .scale_factor = 0.5, .interrupt = 0}));
}

TEST_CASE("cuda trainer: AugMix and RandAugment on [0, 1] float images") {
  check_cnn(float_setups(), 2, no_extra_checks, alg::AugMix(3, -1, 2));
  check_cnn(float_setups(), 2, no_extra_checks, alg::RandAugment(9, 2));
}

TEST_CASE("cuda trainer: NormalizeInputs turns uint8 images into normalised float32 or bfloat16") {
  const std::vector<double> mean = {0.5, 0.4, 0.3}, std = {0.25, 0.2, 0.3};
  check_cnn({{DataOn::cpu, Precision::fp32, at::kByte, 0}, {DataOn::gpu, Precision::fp32, at::kByte, 0}}, 3, no_extra_checks,
                     alg::NormalizeInputs({.mean = mean, .std = std}));
  // bfloat16 inputs for a float32 model under bf16 autocast
  const at::ScalarType bf16 = effective(Precision::amp_bf16) == Precision::amp_bf16 ? at::kBFloat16 : at::kFloat;
  check_cnn({{DataOn::gpu, Precision::amp_bf16, at::kByte, 0}, {DataOn::cpu, Precision::amp_bf16, at::kByte, 0}}, 3,
            no_extra_checks, alg::NormalizeInputs({.mean = mean, .std = std, .dtype = bf16}));
}

TEST_CASE("cuda trainer: AugMix and RandAugment on uint8 images, then NormalizeInputs") {
  const std::vector<double> mean = {0.5, 0.5, 0.5}, std = {0.25, 0.25, 0.25};
  const std::vector<Setup> uint8_setups = {{DataOn::cpu, Precision::fp32, at::kByte, 0},
                                           {DataOn::gpu, Precision::amp_bf16, at::kByte, 4}};
  check_cnn(uint8_setups, 2, no_extra_checks, alg::AugMix(3, -1, 2), alg::NormalizeInputs({.mean = mean, .std = std}));
  check_cnn(uint8_setups, 2, no_extra_checks, alg::RandAugment(9, 2), alg::NormalizeInputs({.mean = mean, .std = std}));
}

// ---------------------------------------------------------------------------------------------------------------
// Compositions: the example's presets and all the batch methods together

TEST_CASE("cuda trainer: the regularized preset (CutOut, MixUp, LabelSmoothing) in fp32, amp_bf16 and amp_fp16") {
  const std::vector<Setup> setups = {{DataOn::cpu, Precision::fp32, at::kFloat, 0},
                                     {DataOn::cpu, Precision::amp_bf16, at::kFloat, 0},
                                     {DataOn::gpu, Precision::amp_bf16, at::kFloat, 4},
                                     {DataOn::cpu, Precision::amp_fp16, at::kFloat, 0},
                                     {DataOn::gpu, Precision::amp_fp16, at::kFloat, 0}};
  check_cnn(setups, 4, no_extra_checks, alg::CutOut(), alg::MixUp(0.2), alg::LabelSmoothing(0.1));
}

TEST_CASE("cuda trainer: the fast preset (SelectiveBackprop, ProgressiveResizing, LabelSmoothing)") {
  const std::vector<Setup> setups = {{DataOn::cpu, Precision::fp32, at::kFloat, 0},
                                     {DataOn::gpu, Precision::amp_bf16, at::kFloat, 0}};
  check_cnn(setups, 8, no_extra_checks, alg::SelectiveBackprop(), alg::ProgressiveResizing(), alg::LabelSmoothing(0.1));
}

TEST_CASE("cuda trainer: seven batch methods together, with microbatches") {
  const std::vector<Setup> setups = {{DataOn::cpu, Precision::fp32, at::kFloat, 4},
                                     {DataOn::gpu, Precision::amp_bf16, at::kFloat, 4}};
  check_cnn(setups, 8, no_extra_checks,
                     alg::SelectiveBackprop({.start = 0.0, .end = 1.0, .keep = 0.5, .interrupt = 2}),
                     alg::ProgressiveResizing(), alg::ColOut(), alg::CutOut(), alg::MixUp(), alg::CutMix(),
                     alg::LabelSmoothing());
}

// ---------------------------------------------------------------------------------------------------------------
// Fused and eager batch transforms feeding a CUDA model, from a translation unit compiled by the host compiler

// Without nvcc (COMPOSER_CUDA_FUSION 0) CUDA microbatches take the eager stages; test_trainer_cuda_fused.cu runs the
// same compositions through the fused CUDA pass.
static_assert(!composer::Trainer<alg::MixUp>::cuda_fusion);

TEST_CASE("cuda trainer (host-compiled): the methods with stages run eagerly on CUDA microbatches") {
  require_cuda();
  const std::int64_t fused = kOnCpu ? 6 : 0;  // the CPU kernel serves CPU training in any translation unit
  SUBCASE("CutOut, MixUp, LabelSmoothing (the regularized preset)") {
    check_fused_matches_eager(fused, at::kFloat, alg::CutOut(), alg::MixUp(0.2), alg::LabelSmoothing(0.1));
  }
  SUBCASE("NormalizeInputs, CutOut and MixUp on uint8 images") {
    check_fused_matches_eager(fused, at::kByte, alg::NormalizeInputs({.mean = {0.5, 0.4, 0.3}, .std = {0.2, 0.2, 0.2}}),
                              alg::CutOut(), alg::MixUp(0.4));
  }
}
