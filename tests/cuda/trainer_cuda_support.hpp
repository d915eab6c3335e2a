// Shared by the `cuda_trainer_tests` files (tests/cuda/test_trainer_cuda*.cpp): the device, small models and data,
// a probe policy that records what each step saw, and checks that a model and its optimizer state live on one
// device. Needs a CUDA device at run time; without one every test case fails at its first REQUIRE.
//
// Built with -DCOMPOSER_CUDA_TRAINER_TESTS_ON_CPU, the same cases run on the CPU with amp taken as fp32: a check of
// the tests' own expectations (batch counts, shapes, passes, resumption) on a machine without a GPU. It proves
// nothing about devices.
#pragma once

#include <torch/torch.h>

#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>
#include <composer/models/resnet.hpp>
#include <composer/models/simple_cnn.hpp>
#include <composer/surgery/surgical_module.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace cuda_trainer_test {

using composer::Event;
using composer::Precision;
using composer::Time;

constexpr std::int64_t kClasses = 10;

#ifdef COMPOSER_CUDA_TRAINER_TESTS_ON_CPU
inline constexpr bool kOnCpu = true;
#else
inline constexpr bool kOnCpu = false;
#endif

/// The device under test: cuda:0 (the CPU in the rehearsal build, see the file comment).
inline c10::Device cuda0() { return kOnCpu ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, 0); }
inline c10::Device cpu() { return c10::Device(c10::kCPU); }

/// Stops the test case with a clear message where no CUDA device is visible.
inline void require_cuda() {
  if (!kOnCpu) REQUIRE_MESSAGE(torch::cuda::is_available(), "cuda_trainer_tests needs a CUDA device");
}

/// The precision a run gets (fp32 in the rehearsal build, which has no autocast device).
inline Precision effective(Precision p) { return kOnCpu ? Precision::fp32 : p; }

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::amp_fp16: return "amp_fp16";
    case Precision::amp_bf16: return "amp_bf16";
  }
  return "?";
}

/// Where the training data lives: a loader over CPU tensors (the Trainer moves each microbatch to the device), or
/// over tensors already on the GPU (so that the AFTER_DATALOADER methods act on device tensors too).
enum class DataOn { cpu, gpu };

inline const char* data_name(DataOn d) { return d == DataOn::cpu ? "cpu loader" : "gpu loader"; }

/// `n` random images [n, channels, side, side] (float in [0, 1), or uint8) and labels in [0, kClasses), batches of
/// `batch`, unshuffled unless `shuffle`.
inline composer::data::TensorLoader image_loader(DataOn where, std::int64_t n = 32, std::int64_t batch = 8,
                                                 std::int64_t channels = 3, std::int64_t side = 16,
                                                 at::ScalarType dtype = at::kFloat, bool shuffle = false,
                                                 std::uint64_t seed = 0) {
  torch::manual_seed(1234);
  at::Tensor x = dtype == at::kByte ? torch::randint(0, 256, {n, channels, side, side}).to(at::kByte)
                                    : torch::rand({n, channels, side, side});
  at::Tensor y = torch::randint(0, kClasses, {n});
  if (where == DataOn::gpu) {
    x = x.to(cuda0());
    y = y.to(cuda0());
  }
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, shuffle, false, seed});
}

/// `n` random feature vectors [n, 6] and labels in [0, 3), on the CPU, unshuffled.
inline composer::data::TensorLoader vector_loader(std::int64_t n = 24, std::int64_t batch = 4) {
  torch::manual_seed(4321);
  return composer::data::TensorLoader(torch::randn({n, 6}), torch::randint(0, 3, {n}),
                                      composer::data::TensorLoaderOptions{batch, false, false, 0});
}

/// The small CNN for [N, 3, 16, 16] images.
inline composer::models::SimpleCNN make_cnn(std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  return composer::models::SimpleCNN(composer::models::SimpleCNNOptions{
      .in_channels = 3, .image_size = 16, .num_classes = kClasses, .width = 8, .hidden = 32});
}

/// A ResNet-8 for [N, 3, 16, 16] images (every layer in a surgery slot), with a dropout slot when `dropout` > 0.
inline composer::models::ResNet make_resnet(double dropout = 0.0, std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  return composer::models::ResNet(composer::models::ResNetOptions{
      .blocks_per_stage = {1, 1, 1}, .width = 16, .in_channels = 3, .num_classes = kClasses, .dropout = dropout});
}

/// An MLP for [N, 6] vectors and 3 classes; no randomness in its forward pass.
inline torch::nn::Sequential make_mlp(std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(6, 16), torch::nn::ReLU(), torch::nn::Linear(16, 16),
                               torch::nn::ReLU(), torch::nn::Linear(16, 3));
}

/// conv → GroupNorm → ReLU → mean → Linear → LayerNorm → ReLU → Linear, each in a surgery slot: the layers the
/// low-precision norm methods replace.
struct NormNetImpl : composer::surgery::SurgicalModule {
  NormNetImpl() {
    conv_ = register_slot("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
    group_ = register_slot("group", torch::nn::GroupNorm(2, 8));
    fc1_ = register_slot("fc1", torch::nn::Linear(8, 16));
    layer_ = register_slot("layer", torch::nn::LayerNorm(torch::nn::LayerNormOptions({16})));
    fc2_ = register_slot("fc2", torch::nn::Linear(16, kClasses));
  }
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor h = at::relu(call(group_, call(conv_, x))).mean({2, 3});
    return call(fc2_, at::relu(call(layer_, call(fc1_, h))));
  }
  Slot conv_, group_, fc1_, layer_, fc2_;
};
TORCH_MODULE(NormNet);

inline std::shared_ptr<torch::optim::SGD> sgd(torch::nn::Module& module, double lr = 0.05, double momentum = 0.9) {
  return std::make_shared<torch::optim::SGD>(module.parameters(), torch::optim::SGDOptions(lr).momentum(momentum));
}

/// Options for a short run on `device`; no evaluation, checkpoints or progress bar unless set afterwards.
inline composer::TrainerOptions run_options(torch::nn::Module& net, composer::data::TensorLoader loader,
                                            const std::string& duration, c10::Device device = cuda0(),
                                            Precision precision = Precision::fp32) {
  return composer::TrainerOptions{.train_dataloader = std::move(loader),
                                  .max_duration = Time(duration),
                                  .optimizers = {sgd(net)},
                                  .seed = 17,
                                  .device = device,
                                  .precision = effective(precision),
                                  .progress_bar = false};
}

/// Records, as a callback (after the algorithms), what each step saw: the parameters at FIT_START (after the
/// surgery methods changed the model at INIT), the device and dtype of the inputs and outputs of every forward
/// pass, the shapes of its inputs, and every microbatch loss.
struct Probe {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::FIT_START, Event::AFTER_FORWARD, Event::AFTER_LOSS};
  std::vector<at::Tensor> start_parameters;
  std::vector<c10::Device> input_devices, output_devices;
  std::vector<at::ScalarType> output_dtypes;
  std::vector<std::vector<std::int64_t>> input_shapes;
  std::vector<double> losses;

  void apply(Event event, composer::State& state) {
    if (event == Event::FIT_START) {
      start_parameters.clear();
      for (const auto& p : state.model->parameters()) start_parameters.push_back(p.detach().to(at::kCPU).clone());
    } else if (event == Event::AFTER_FORWARD) {
      input_devices.push_back(state.batch.inputs.device());
      input_shapes.push_back(state.batch.inputs.sizes().vec());
      output_devices.push_back(state.outputs.device());
      output_dtypes.push_back(state.outputs.scalar_type());
    } else {
      losses.push_back(state.loss.detach().to(at::kFloat).item<double>());
    }
  }
};

/// Every tensor an optimizer keeps per parameter (SGD's momentum, Adam's moments), as far as it is of a kind known
/// here.
inline std::vector<at::Tensor> optimizer_state_tensors(torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> tensors;
  for (auto& item : optimizer.state()) {
    if (auto* s = dynamic_cast<torch::optim::SGDParamState*>(item.second.get())) {
      if (s->momentum_buffer().defined()) tensors.push_back(s->momentum_buffer());
    } else if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(item.second.get())) {
      tensors.push_back(a->exp_avg());
      tensors.push_back(a->exp_avg_sq());
    }
  }
  return tensors;
}

/// The names of the parameters and buffers of `module` (and of its optimizers' state) that are not on `device`.
inline std::string misplaced(const torch::nn::Module& module, const c10::Device& device,
                             const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  std::ostringstream out;
  for (const auto& item : module.named_parameters())
    if (item.value().device() != device) out << " parameter " << item.key() << " on " << item.value().device() << ";";
  for (const auto& item : module.named_buffers())
    if (item.value().defined() && item.value().device() != device)
      out << " buffer " << item.key() << " on " << item.value().device() << ";";
  for (std::size_t i = 0; i < optimizers.size(); ++i)
    for (const auto& t : optimizer_state_tensors(*optimizers[i]))
      if (t.device() != device) out << " optimizer " << i << " state on " << t.device() << ";";
  return out.str();
}

/// Whether any parameter of `module` differs from `before` (copies on the CPU, in order); a changed parameter count
/// counts as a change.
inline bool parameters_changed(const torch::nn::Module& module, const std::vector<at::Tensor>& before) {
  const auto now = module.parameters();
  if (now.size() != before.size()) return true;
  for (std::size_t i = 0; i < now.size(); ++i) {
    const at::Tensor p = now[i].detach().to(at::kCPU);
    if (p.sizes() != before[i].sizes() || !torch::equal(p, before[i])) return true;
  }
  return false;
}

/// Copies of the parameters of `module` on the CPU.
inline std::vector<at::Tensor> cpu_parameters(const torch::nn::Module& module) {
  std::vector<at::Tensor> copies;
  for (const auto& p : module.parameters()) copies.push_back(p.detach().to(at::kCPU).clone());
  return copies;
}

/// The checks every method's run must pass on `device`: it trained `batches` steps, every microbatch loss was
/// finite, every forward pass ran on `device` with outputs of `output_dtype`, the model (parameters and buffers)
/// and the optimizers' state are on `device`, and the parameters changed from FIT_START on.
template <class TrainerT>
void check_trained_on(TrainerT& trainer, const c10::Device& device, std::int64_t batches,
                      at::ScalarType output_dtype = at::kFloat) {
  const Probe& probe = trainer.template get<Probe>();
  const composer::State& state = trainer.state();
  CHECK(state.timestamp.batch().count() == batches);
  REQUIRE_FALSE(probe.losses.empty());
  for (std::size_t i = 0; i < probe.losses.size(); ++i) {
    INFO("microbatch loss " << i << " = " << probe.losses[i]);
    CHECK(std::isfinite(probe.losses[i]));
  }
  REQUIRE_FALSE(probe.input_devices.empty());
  for (std::size_t i = 0; i < probe.input_devices.size(); ++i) {
    INFO("forward pass " << i);
    CHECK(probe.input_devices[i] == device);
    CHECK(probe.output_devices[i] == device);
    CHECK(std::string(c10::toString(probe.output_dtypes[i])) == c10::toString(output_dtype));
  }
  const std::string wrong = misplaced(state.model.module(), device, state.optimizers);
  CHECK_MESSAGE(wrong.empty(), "not on " << device << ":" << wrong);
  CHECK_MESSAGE(parameters_changed(state.model.module(), probe.start_parameters), "no parameter changed in training");
  for (const auto& p : state.model->parameters())  // amp keeps fp32 weights
    CHECK(std::string(c10::toString(p.scalar_type())) == "Float");
}

/// The dtype of the model's outputs under `precision` (a final Linear layer runs in the autocast dtype).
inline at::ScalarType output_dtype_of(Precision precision) {
  switch (effective(precision)) {
    case Precision::fp32: return at::kFloat;
    case Precision::amp_fp16: return at::kHalf;
    case Precision::amp_bf16: return at::kBFloat16;
  }
  return at::kFloat;
}

/// One way to run a method: where the data lives, the precision, the dtype of the images and the microbatch size.
struct Setup {
  DataOn data = DataOn::cpu;
  Precision precision = Precision::fp32;
  at::ScalarType input_dtype = at::kFloat;
  std::int64_t microbatch = 0;  // 0: whole batches
};

inline std::string describe(const Setup& s) {
  return std::string(data_name(s.data)) + ", " + precision_name(s.precision) + ", " + c10::toString(s.input_dtype) +
         " images" + (s.microbatch > 0 ? ", microbatches of " + std::to_string(s.microbatch) : "");
}

/// The setups most methods run with: float images on the CPU in fp32, and on the GPU in amp_bf16 in microbatches.
inline const std::vector<Setup>& float_setups() {
  static const std::vector<Setup> setups = {{DataOn::cpu, Precision::fp32, at::kFloat, 0},
                                            {DataOn::gpu, Precision::amp_bf16, at::kFloat, 4}};
  return setups;
}

/// For `check_method` when the method has no checks of its own, and for `check_method_with` when the options need no
/// change.
inline constexpr auto no_extra_checks = [](auto&) {};
inline constexpr auto default_options = [](composer::TrainerOptions&, const Setup&) {};

/// Trains the network `make_net()` with the policies `algs` for `batches` steps (4 batches of 8 [3, 16, 16]
/// images per epoch) on cuda:0 under each setup, after `configure(options, setup)` changed the options, checks the
/// run (check_trained_on), then hands the trainer to `extra` for the method's own checks. A setup whose run throws
/// fails with the message, and the next one runs.
template <class MakeNet, class Configure, class Extra, class... Algs>
void check_method_with(MakeNet&& make_net, const std::vector<Setup>& setups, std::int64_t batches,
                       Configure&& configure, Extra&& extra, const Algs&... algs) {
  require_cuda();
  for (const Setup& setup : setups) {
    const std::string what = describe(setup);
    INFO(what);
    try {
      auto net = make_net();
      auto options = run_options(*net, image_loader(setup.data, 32, 8, 3, 16, setup.input_dtype),
                                 std::to_string(batches) + "ba", cuda0(), setup.precision);
      if (setup.microbatch > 0) options.device_train_microbatch_size = setup.microbatch;
      configure(options, setup);
      composer::Trainer<Algs..., Probe> trainer(net, std::move(options), algs..., Probe{});
      trainer.fit();
      check_trained_on(trainer, cuda0(), batches, output_dtype_of(setup.precision));
      extra(trainer);
    } catch (const std::exception& e) {
      FAIL_CHECK(what << ": " << std::string(e.what()));
    }
  }
}

/// `check_method_with` with the options as `run_options` makes them.
template <class MakeNet, class Extra, class... Algs>
void check_method(MakeNet&& make_net, const std::vector<Setup>& setups, std::int64_t batches, Extra&& extra,
                  const Algs&... algs) {
  check_method_with(std::forward<MakeNet>(make_net), setups, batches, default_options, std::forward<Extra>(extra),
                    algs...);
}

/// A fresh, empty folder under the system's temporary folder.
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = composer::io::join(composer::io::temp_directory(), "composer_cuda_trainer_" + name);
  composer::io::remove_all(dir);
  composer::io::create_directories(dir);
  return dir;
}

/// Whether two lists of tensors (on any devices) agree within `tol` (absolute and relative), compared on the CPU.
inline bool all_close(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, double tol) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const at::Tensor x = a[i].detach().to(at::kCPU).to(at::kDouble);
    const at::Tensor y = b[i].detach().to(at::kCPU).to(at::kDouble);
    if (x.sizes() != y.sizes() || !torch::allclose(x, y, tol, tol)) return false;
  }
  return true;
}

/// The batch the model sees: the inputs after the forward pass's methods, the targets at the loss (on the CPU).
struct BatchTap {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_FORWARD, Event::AFTER_LOSS};
  std::vector<at::Tensor> inputs, targets;
  std::vector<c10::Device> devices;
  void apply(Event e, composer::State& state) {
    if (e == Event::AFTER_FORWARD) {
      devices.push_back(state.batch.inputs.device());
      inputs.push_back(state.batch.inputs.to(at::kCPU).to(at::kFloat));
    } else {
      targets.push_back(state.batch.targets.to(at::kCPU).to(at::kFloat));
    }
  }
};

/// What a run with a BatchTap saw, how many microbatches took the fused pass, and the trained parameters.
struct TapRun {
  BatchTap tap;
  std::int64_t fused = 0;
  std::vector<at::Tensor> weights;
};

/// Trains the CNN 2 epochs of 3 batches of 8 (16x16 images with 3 channels, `dtype`, shuffled) on cuda:0 with
/// `algs`, the fused pass allowed or not, in microbatches of `microbatch` samples (0: whole batches).
template <class... Algs>
TapRun tap_run(bool fuse, DataOn data, at::ScalarType dtype, std::int64_t microbatch, Algs... algs) {
  auto net = make_cnn(3);
  auto options = run_options(*net, image_loader(data, 24, 8, 3, 16, dtype, /*shuffle=*/true, 5), "2ep");
  options.fuse_batch_transforms = fuse;
  if (microbatch > 0) options.device_train_microbatch_size = microbatch;
  composer::Trainer<Algs..., BatchTap> trainer(net, std::move(options), algs..., BatchTap{});
  trainer.fit();
  return TapRun{trainer.template get<BatchTap>(), trainer.fused_microbatches(), cpu_parameters(*net)};
}

/// Trains with the fused pass off and on (whole batches, data on the CPU and, on a GPU, on the GPU) and checks
/// that the CUDA model saw the same batches, that `expected_fused` of the 6 batches took the fused pass, and that
/// the weights agree.
template <class... Algs>
void check_fused_matches_eager(std::int64_t expected_fused, at::ScalarType dtype, Algs... algs) {
  for (DataOn data : {DataOn::cpu, DataOn::gpu}) {
    if (kOnCpu && data == DataOn::gpu) continue;
    INFO(data_name(data));
    const TapRun eager = tap_run(false, data, dtype, 0, algs...);
    const TapRun fused = tap_run(true, data, dtype, 0, algs...);
    CHECK(eager.fused == 0);
    CHECK(fused.fused == expected_fused);
    REQUIRE(eager.tap.inputs.size() == 6);
    REQUIRE(fused.tap.inputs.size() == 6);
    for (std::size_t b = 0; b < 6; ++b) {
      INFO("batch " << b);
      CHECK(eager.tap.devices[b] == cuda0());
      CHECK(fused.tap.devices[b] == cuda0());
      REQUIRE(eager.tap.inputs[b].sizes() == fused.tap.inputs[b].sizes());
      CHECK(torch::allclose(eager.tap.inputs[b], fused.tap.inputs[b], 2e-5, 2e-5));
      CHECK(torch::allclose(eager.tap.targets[b], fused.tap.targets[b], 1e-6, 1e-6));
    }
    CHECK(all_close(eager.weights, fused.weights, 1e-3));
  }
}

}  // namespace cuda_trainer_test
