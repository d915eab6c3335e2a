// The device battery: every method of the library, its functional form and the Trainer run with the model and
// the data on an accelerator, emulated on the CPU (tests/support/emulated_device.hpp). The emulated device
// throws where a CUDA GPU would — a tensor the library made on the CPU meeting the data on the device — so a
// device mistake fails here, in CI, without a GPU.
#include <torch/torch.h>

#include "../support/emulated_device.hpp"

#include <composer/algorithms.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/functional.hpp>
#include <composer/io/files.hpp>
#include <composer/metrics.hpp>
#include <composer/models/resnet.hpp>
#include <composer/models/simple_cnn.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace alg = composer::algorithms;
namespace fn = composer::functional;
namespace em = composer_test::emulated;
using composer::Time;

namespace device_battery {

bool on_device(const at::Tensor& t) { return t.defined() && t.device() == em::device; }

// ResNet-8 (one block per stage, width 16) for 1x12x12 images, with dropout before the classifier (GyroDropout).
composer::models::ResNet small_resnet() {
  return composer::models::ResNet(composer::models::ResNetOptions{
      .blocks_per_stage = {1, 1, 1}, .width = 16, .in_channels = 1, .num_classes = 10, .dropout = 0.2});
}

// 16 images in [0, 1] with labels; batches of 8 on the CPU, as a data loader yields them.
composer::data::TensorLoader cpu_loader(std::uint64_t seed = 1) {
  torch::manual_seed(static_cast<std::uint64_t>(seed));
  auto x = torch::rand({16, 1, 12, 12});
  auto y = torch::randint(0, 10, {16});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{8, true, false, seed});
}

struct Outcome {
  double loss = NAN;
  double accuracy = NAN;
  bool parameters_on_device = false;
  bool parameters_moved = false;
};

// Trains the ResNet on the emulated device with `policies` for 2 epochs (4 batches) and evaluates it there.
template <class... Policies>
Outcome train_on_device(Policies... policies) {
  auto net = small_resnet();
  net->to(em::device);
  std::vector<at::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.detach().cpu().clone());
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  composer::Trainer<Policies...> trainer(net,
                                         {.train_dataloader = cpu_loader(1),
                                          .eval_dataloader = cpu_loader(2),
                                          .max_duration = Time("2ep"),
                                          .optimizers = {sgd},
                                          .seed = 5,
                                          .device = em::device,
                                          .progress_bar = false},
                                         std::move(policies)...);
  trainer.fit();
  Outcome outcome;
  const at::Tensor loss = trainer.state().loss.detach().cpu();
  outcome.loss = loss.item<double>();
  outcome.accuracy = trainer.eval().at("eval").at("accuracy");
  outcome.parameters_on_device = true;
  for (const auto& p : net->parameters()) outcome.parameters_on_device &= on_device(p);
  const auto after = net->parameters();
  for (const auto& b : before)
    for (const auto& a : after)
      if (a.sizes() == b.sizes() && !torch::equal(a.detach().cpu().contiguous(), b.contiguous())) outcome.parameters_moved = true;
  return outcome;
}

void check_trained(const Outcome& outcome) {
  CHECK(std::isfinite(outcome.loss));
  CHECK(outcome.accuracy >= 0.0);
  CHECK(outcome.accuracy <= 1.0);
  CHECK(outcome.parameters_on_device);
  CHECK(outcome.parameters_moved);
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = composer::io::join(composer::io::temp_directory(), "composer_device_battery_" + name);
  composer::io::remove_all(dir);
  composer::io::create_directories(dir);
  return dir;
}

}  // namespace device_battery

using namespace device_battery;

TEST_CASE("the emulated device computes as the CPU and rejects a CPU tensor meeting its tensors") {
  torch::manual_seed(0);
  const auto x = torch::rand({4, 3, 5, 5});
  const auto w = torch::rand({2, 3, 3, 3});
  const auto on = em::to_device(x);
  REQUIRE(on.device() == em::device);
  // Results stay on the device and equal the CPU's.
  const auto y = torch::conv2d(on, em::to_device(w)).relu().sum({2, 3});
  CHECK(y.device() == em::device);
  CHECK(torch::allclose(y.cpu(), torch::conv2d(x, w).relu().sum({2, 3})));
  // A CPU scalar may meet device tensors, as on CUDA; a CPU tensor with a dimension may not.
  CHECK(on_device(on * torch::scalar_tensor(2.0)));
  CHECK_THROWS_WITH_AS(on + torch::ones({5}), doctest::Contains("found at least two devices"), c10::Error);
  CHECK_THROWS_WITH_AS(on.index_select(0, torch::arange(2)), doctest::Contains("found at least two devices"),
                       c10::Error);
  CHECK(on.index_select(0, torch::arange(2).to(em::device)).device() == em::device);
  // Copies between the devices work both ways.
  CHECK(torch::equal(on.cpu(), x));
  auto back = torch::zeros({4, 3, 5, 5}).to(em::device);
  back.copy_(x);
  CHECK(torch::equal(back.cpu(), x));
  // Autograd and a module's parameters on the device.
  torch::nn::Linear linear(3, 2);
  linear->to(em::device);
  CHECK(on_device(linear->weight));
  const auto loss = linear(em::to_device(torch::rand({4, 3}))).pow(2).sum();
  loss.backward();
  CHECK(on_device(linear->weight.grad()));
}

TEST_CASE("the functional batch transforms keep the data's device") {
  torch::manual_seed(1);
  const auto x = em::to_device(torch::rand({8, 3, 12, 12}));
  const auto y = em::to_device(torch::randint(0, 10, {8}));
  const auto logits = em::to_device(torch::randn({8, 10}));
  auto mixed = fn::mixup_batch(x, y, std::nullopt, 0.2);
  CHECK(on_device(mixed.input_mixed));
  CHECK(on_device(mixed.target_perm));
  auto cut = fn::cutmix_batch(x, y);
  CHECK(on_device(cut.input_mixed));
  CHECK(on_device(cut.target_perm));
  CHECK(on_device(fn::cutout_batch(x, 2, 0.5)));
  CHECK(on_device(fn::smooth_labels(logits, y, 0.1)));
  CHECK(on_device(fn::ensure_targets_one_hot(logits, y)));
  auto colout = fn::colout_batch(x, y, 0.25, 0.25);
  CHECK(on_device(colout.input));
  auto resized = fn::resize_batch(x, y, 0.5, "resize");
  CHECK(on_device(resized.input));
  auto augmixed = fn::augmix_image(x[0]);
  CHECK(on_device(augmixed));
  CHECK(on_device(fn::randaugment_image(x[0])));
}

TEST_CASE("the metrics accumulate on the outputs' device, for class-index and probability targets") {
  torch::manual_seed(2);
  const auto cpu_logits = torch::randn({8, 10});
  const auto cpu_targets = torch::randint(0, 10, {8});
  const auto logits = em::to_device(cpu_logits);
  const auto targets = em::to_device(cpu_targets);
  const auto probabilities = em::to_device(torch::one_hot(cpu_targets, 10).to(torch::kFloat));
  composer::metrics::MetricCollection on_accelerator{composer::metrics::Accuracy(3), composer::metrics::PerClassAccuracy(10),
                                                     composer::metrics::CrossEntropy{}};
  composer::metrics::MetricCollection on_cpu = on_accelerator;
  on_accelerator.update(logits, targets);
  on_accelerator.update(logits, probabilities);
  on_cpu.update(cpu_logits, cpu_targets);
  on_cpu.update(cpu_logits, cpu_targets);
  const auto device_values = on_accelerator.compute();
  const auto cpu_values = on_cpu.compute();
  REQUIRE(device_values.size() == cpu_values.size());
  for (const auto& [name, value] : cpu_values) {
    CAPTURE(name);
    if (std::isnan(value))
      CHECK(std::isnan(device_values.at(name)));
    else
      CHECK(device_values.at(name) == doctest::Approx(value));
  }
}

TEST_CASE("a Trainer on the accelerator with the headline batch methods (CutOut, MixUp, LabelSmoothing)") {
  check_trained(train_on_device(alg::CutOut(), alg::MixUp(0.2), alg::LabelSmoothing(0.1)));
}

TEST_CASE("a Trainer on the accelerator with CutMix and LabelSmoothing") {
  check_trained(train_on_device(alg::CutMix(), alg::LabelSmoothing(0.1)));
}

TEST_CASE("a Trainer on the accelerator with the loss-interpolating MixUp and CutMix") {
  check_trained(train_on_device(alg::MixUp(1.0, /*interpolate_loss=*/true)));
  check_trained(train_on_device(alg::CutMix(1.0, /*interpolate_loss=*/true)));
}

TEST_CASE("a Trainer on the accelerator with each data method") {
  SUBCASE("ColOut") { check_trained(train_on_device(alg::ColOut())); }
  SUBCASE("NormalizeInputs") { check_trained(train_on_device(alg::NormalizeInputs({.mean = {0.5}, .std = {0.25}}))); }
  SUBCASE("ProgressiveResizing") {
    check_trained(train_on_device(
        alg::ProgressiveResizing({.initial_scale = 0.5, .finetune_fraction = 0.0, .delay_fraction = 0.0})));
  }
  SUBCASE("SelectiveBackprop") {
    check_trained(train_on_device(alg::SelectiveBackprop({.start = 0.0, .end = 1.0, .keep = 0.5, .interrupt = 0})));
  }
  SUBCASE("AugMix") { check_trained(train_on_device(alg::AugMix())); }
  SUBCASE("RandAugment") { check_trained(train_on_device(alg::RandAugment())); }
}

TEST_CASE("a Trainer on the accelerator with each optimisation method") {
  SUBCASE("EMA") { check_trained(train_on_device(alg::EMA({.half_life = Time("1ba")}))); }
  SUBCASE("SWA") {
    check_trained(
        train_on_device(alg::SWA({.swa_start = Time("0.25dur"), .swa_end = Time("0.75dur"), .update_interval = Time("1ba")})));
  }
  SUBCASE("SAM") { check_trained(train_on_device(alg::SAM())); }
  SUBCASE("GradientClipping") { check_trained(train_on_device(alg::GradientClipping("norm", 1.0))); }
  SUBCASE("LayerFreezing") { check_trained(train_on_device(alg::LayerFreezing({.freeze_start = 0.0}))); }
}

TEST_CASE("a Trainer on the accelerator with the model-surgery methods") {
  check_trained(train_on_device(alg::BlurPool(), alg::SqueezeExcite({.latent_channels = 0.25, .min_channels = 16}),
                                alg::GhostBatchNorm({.ghost_batch_size = 4}),
                                alg::Factorize({.factorize_linears = false, .min_channels = 32, .latent_channels = 0.25}),
                                alg::WeightStandardization(), alg::StochasticDepth({.drop_rate = 0.2}),
                                alg::GyroDropout({.p = 0.5, .sigma = 4, .tau = 4}), alg::LowPrecisionLayerNorm(),
                                alg::LowPrecisionGroupNorm(), alg::ChannelsLast()));
}

TEST_CASE("a checkpoint written on the accelerator resumes on the CPU, and one written on the CPU on the accelerator") {
  const std::string dir = fresh_dir("resume");
  auto run = [&](c10::Device device, const std::string& folder, const std::string& load, const char* duration) {
    auto net = small_resnet();
    net->to(device);
    auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    composer::Trainer<alg::MixUp, alg::EMA, alg::SWA> trainer(
        net,
        {.train_dataloader = cpu_loader(1),
         .max_duration = Time(duration),
         .optimizers = {sgd},
         .save_folder = folder,
         .save_interval = Time("2ba"),
         .load_path = load,
         .seed = 9,
         .device = device,
         .progress_bar = false},
        alg::MixUp(0.2), alg::EMA({.half_life = Time("1ba")}),
        alg::SWA({.swa_start = Time("1ep"), .swa_end = Time("3ep"), .update_interval = Time("1ba")}));
    trainer.fit();
    for (const auto& p : net->parameters()) CHECK(p.device() == device);
    // The optimizer's momenta (read from a checkpoint onto the CPU) live beside the parameters.
    for (const auto& [key, state] : sgd->state()) {
      const auto* momentum = dynamic_cast<const torch::optim::SGDParamState*>(state.get());
      REQUIRE(momentum != nullptr);
      CHECK(momentum->momentum_buffer().device() == device);
    }
    const auto& swa = trainer.template get<alg::SWA>();
    for (const auto& item : swa.averaged_parameters()) CHECK(item.value().device() == device);
    return trainer.state().timestamp.batch().count();
  };
  const std::string on_accelerator = composer::io::join(dir, "accelerator");
  CHECK(run(em::device, on_accelerator, "", "2ba") == 2);
  const std::string written = composer::io::join(on_accelerator, "ep0-ba2-rank0.pt");
  REQUIRE(composer::io::exists(written));
  CHECK(run(c10::Device(c10::kCPU), composer::io::join(dir, "cpu"), written, "4ba") == 4);
  const std::string from_cpu = composer::io::join(dir, "cpu/ep1-ba4-rank0.pt");
  REQUIRE(composer::io::exists(from_cpu));
  CHECK(run(em::device, composer::io::join(dir, "back"), from_cpu, "6ba") == 6);
  composer::io::remove_all(dir);
}
