// The Trainer's fused pass on CUDA (needs a GPU): compiled by nvcc, so COMPOSER_CUDA_FUSION is on and the fusable
// stages of a composition run as one launch of the CUDA kernel per device microbatch, at BEFORE_FORWARD, feeding
// the model the batches the eager stages give; uint8 batches cross to the device as uint8.
#include "trainer_cuda_support.hpp"

#include <composer/algorithms/cutmix.hpp>
#include <composer/algorithms/cutout.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/mixup.hpp>
#include <composer/algorithms/normalize_inputs.hpp>

#include <cstdint>
#include <vector>

using namespace cuda_trainer_test;
namespace alg = composer::algorithms;
namespace st = composer::kernels::stage;

static_assert(COMPOSER_CUDA_FUSION == 1, "this test is compiled as CUDA, with the fused CUDA pass");
static_assert(composer::Trainer<alg::MixUp, alg::CutOut, alg::LabelSmoothing>::cuda_fusion);
static_assert(std::is_same_v<composer::Trainer<alg::MixUp, alg::CutOut, alg::LabelSmoothing>::fusion_plan::cuda_transform,
                             composer::kernels::cuda::FusedBatchTransform<st::MixUp, st::CutOut>>);

namespace {

// What crossed to the device and what the model got: the dtype of the loader's batch at BEFORE_TRAIN_BATCH (after
// AFTER_DATALOADER) and, at AFTER_FORWARD, the device and dtype of the microbatch the model saw.
struct UploadTap {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BEFORE_TRAIN_BATCH, Event::AFTER_FORWARD};
  std::vector<at::ScalarType> batch_dtypes, model_dtypes;
  std::vector<c10::Device> model_devices;
  void apply(Event e, composer::State& state) {
    if (e == Event::BEFORE_TRAIN_BATCH) {
      batch_dtypes.push_back(state.batch.inputs.scalar_type());
    } else {
      model_dtypes.push_back(state.batch.inputs.scalar_type());
      model_devices.push_back(state.batch.inputs.device());
    }
  }
};

}  // namespace

TEST_CASE("cuda trainer (nvcc): Trainer<MixUp, CutOut, LabelSmoothing> launches the fused kernel once per microbatch") {
  require_cuda();
  for (const std::int64_t microbatch : {std::int64_t{0}, std::int64_t{4}, std::int64_t{3}}) {
    INFO("microbatch " << microbatch);
    auto net = make_cnn(3);
    auto options = run_options(*net, image_loader(DataOn::cpu, 32, 8), "1ep");
    if (microbatch > 0) options.device_train_microbatch_size = microbatch;
    composer::Trainer<alg::MixUp, alg::CutOut, alg::LabelSmoothing, UploadTap> trainer(
        net, std::move(options), alg::MixUp(0.2), alg::CutOut(), alg::LabelSmoothing(0.1), UploadTap{});
    const std::int64_t before = composer::kernels::cuda::image_launches();
    trainer.fit();
    const std::int64_t launches = composer::kernels::cuda::image_launches() - before;
    // 4 batches of 8: whole (1 microbatch each), 4 + 4 (2 each) or 3 + 3 + 2 (3 each).
    const std::int64_t per_batch = microbatch == 0 ? 1 : (8 + microbatch - 1) / microbatch;
    CHECK(launches == 4 * per_batch);
    CHECK(trainer.fused_microbatches() == 4 * per_batch);
    const auto& tap = trainer.get<UploadTap>();
    REQUIRE(tap.model_devices.size() == static_cast<std::size_t>(4 * per_batch));
    for (const auto& d : tap.model_devices) CHECK(d == cuda0());
  }
}

TEST_CASE("cuda trainer (nvcc): fused = eager on device microbatches") {
  require_cuda();
  SUBCASE("CutOut, MixUp, LabelSmoothing (the regularized preset)") {
    check_fused_matches_eager(6, at::kFloat, alg::CutOut(), alg::MixUp(0.2), alg::LabelSmoothing(0.1));
  }
  SUBCASE("MixUp then CutMix") { check_fused_matches_eager(6, at::kFloat, alg::MixUp(1.0), alg::CutMix()); }
  SUBCASE("NormalizeInputs, CutOut and MixUp on uint8 images") {
    check_fused_matches_eager(6, at::kByte, alg::NormalizeInputs({.mean = {0.5, 0.4, 0.3}, .std = {0.2, 0.2, 0.2}}),
                              alg::CutOut(), alg::MixUp(0.4));
  }
  SUBCASE("NormalizeInputs to bfloat16, CutMix, CutOut, in microbatches of 3") {
    const alg::NormalizeInputsOptions norm{.mean = {0.5, 0.5, 0.5}, .std = {0.5, 0.5, 0.5}, .dtype = at::kBFloat16};
    const TapRun eager = tap_run(false, DataOn::cpu, at::kByte, 3, alg::NormalizeInputs(norm), alg::CutOut(), alg::CutMix());
    const TapRun fused = tap_run(true, DataOn::cpu, at::kByte, 3, alg::NormalizeInputs(norm), alg::CutOut(), alg::CutMix());
    CHECK(fused.fused == 18);
    REQUIRE(eager.tap.inputs.size() == 18);
    REQUIRE(fused.tap.inputs.size() == 18);
    // Values in [−1, 1]: one bfloat16 ulp there is at most 2^-7.
    for (std::size_t b = 0; b < 18; ++b) CHECK(torch::allclose(eager.tap.inputs[b], fused.tap.inputs[b], 0.0, 1.0 / 128));
  }
}

TEST_CASE("cuda trainer (nvcc): with NormalizeInputs, uint8 batches cross to the device as uint8") {
  require_cuda();
  auto run = [](bool fuse) {
    auto net = make_cnn(3);
    auto options = run_options(*net, image_loader(DataOn::cpu, 16, 8, 3, 16, at::kByte), "1ep");
    options.fuse_batch_transforms = fuse;
    composer::Trainer<alg::NormalizeInputs, alg::MixUp, UploadTap> trainer(
        net, std::move(options), alg::NormalizeInputs({.mean = {0.5, 0.5, 0.5}, .std = {0.25, 0.25, 0.25}}),
        alg::MixUp(0.2), UploadTap{});
    trainer.fit();
    return trainer.get<UploadTap>();
  };
  const UploadTap fused = run(true);
  const UploadTap eager = run(false);
  REQUIRE(fused.batch_dtypes.size() == 2);
  REQUIRE(eager.batch_dtypes.size() == 2);
  for (std::size_t b = 0; b < 2; ++b) {
    CHECK((fused.batch_dtypes[b] == at::kByte));   // the loader's bytes, moved as they are
    CHECK((eager.batch_dtypes[b] == at::kFloat));  // normalised on the host at AFTER_DATALOADER, then moved
    CHECK((fused.model_dtypes[b] == at::kFloat));
    CHECK(fused.model_devices[b] == cuda0());
  }
}
