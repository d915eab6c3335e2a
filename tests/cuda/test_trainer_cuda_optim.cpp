// The optimizer and training-loop methods in a Trainer on a CUDA device (needs one): EMA (with evaluation on the
// averaged weights), SWA, SAM, GradientClipping and LayerFreezing; and checkpoints that change device: written by a
// CUDA run and resumed on the CPU, written on the CPU and resumed on CUDA, ending where the uninterrupted run ends,
// with the model, the optimizer's state and the policies' state on the device of the run that resumed.
#include "trainer_cuda_support.hpp"

#include <composer/algorithms/blurpool.hpp>
#include <composer/algorithms/channels_last.hpp>
#include <composer/algorithms/cutout.hpp>
#include <composer/algorithms/ema.hpp>
#include <composer/algorithms/gradient_clipping.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/layer_freezing.hpp>
#include <composer/algorithms/mixup.hpp>
#include <composer/algorithms/sam.hpp>
#include <composer/algorithms/squeeze_excite.hpp>
#include <composer/algorithms/stochastic_depth.hpp>
#include <composer/algorithms/swa.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace cuda_trainer_test;
namespace alg = composer::algorithms;

namespace {

template <class Extra, class... Algs>
void check_cnn(const std::vector<Setup>& setups, std::int64_t batches, Extra&& extra, const Algs&... algs) {
  check_method([] { return make_cnn(); }, setups, batches, std::forward<Extra>(extra), algs...);
}

/// The names of the tensors in `dict` (an OrderedDict of tensors) that are not on `device`.
template <class Dict>
std::string misplaced_tensors(const Dict& dict, const c10::Device& device) {
  std::string wrong;
  for (const auto& item : dict)
    if (item.value().defined() && item.value().device() != device) wrong += " " + item.key();
  return wrong;
}

/// The gradients the optimizer is about to use, after the algorithms of AFTER_TRAIN_BATCH (a callback).
struct GradientLog {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_TRAIN_BATCH};
  std::vector<double> norms, max_abs;
  std::vector<c10::Device> devices;
  void apply(Event, composer::State& state) {
    double sq = 0.0, largest = 0.0;
    for (const auto& p : state.model->parameters()) {
      if (!p.grad().defined()) continue;
      devices.push_back(p.grad().device());
      sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
      largest = std::max(largest, p.grad().abs().max().to(at::kDouble).item<double>());
    }
    norms.push_back(std::sqrt(sq));
    max_abs.push_back(largest);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Each method alone

TEST_CASE("cuda trainer: EMA keeps its average on the device and evaluates with it") {
  auto with_eval = [](composer::TrainerOptions& options, const Setup& setup) {
    options.eval_dataloader = image_loader(setup.data, 16, 8);
    options.eval_interval = Time("2ba");
  };
  auto ema_checks = [](auto& trainer) {
    const auto& ema = trainer.template get<alg::EMA>();
    CHECK(ema.ema_started());
    CHECK_FALSE(ema.ema_weights_active());  // training weights back after each evaluation
    CHECK_MESSAGE(misplaced_tensors(ema.ema_parameters().named_parameters(), cuda0()).empty(), "EMA parameters off the device");
    CHECK_MESSAGE(misplaced_tensors(ema.ema_parameters().named_buffers(), cuda0()).empty(), "EMA buffers off the device");
    const auto& metrics = trainer.state().eval_metric_values.at("eval");
    CHECK(std::isfinite(metrics.at("cross_entropy")));
    // get_ema_model copies the average into a module on the CPU
    auto copy = make_cnn(99);
    ema.get_ema_model(*copy);
    CHECK(misplaced(*copy, cpu()).empty());
    CHECK(all_close(cpu_parameters(*copy), ema.ema_parameters().named_parameters().values(), 0.0));
  };
  check_method_with([] { return make_cnn(); }, float_setups(), 4, with_eval, ema_checks,
                    alg::EMA({.half_life = Time("2ba")}));
}

TEST_CASE("cuda trainer: SWA averages on the device and loads the average") {
  auto swa_checks = [](auto& trainer) {
    const auto& swa = trainer.template get<alg::SWA>();
    CHECK(swa.swa_started());
    CHECK(swa.swa_completed());
    CHECK(misplaced_tensors(swa.averaged_parameters(), cuda0()).empty());
    CHECK(misplaced_tensors(swa.swa_buffers(), cuda0()).empty());
  };
  check_cnn(float_setups(), 8, swa_checks,
            alg::SWA({.swa_start = Time("0.25dur"), .swa_end = Time("0.75dur"), .update_interval = Time("1ba")}));
  check_cnn(float_setups(), 8, swa_checks,
            alg::SWA({.swa_start = Time("0.25dur"), .swa_end = Time("0.75dur"), .update_interval = Time("1ba"),
                      .schedule_swa_lr = true, .anneal_steps = 2, .swa_lr = 0.01}));
}

TEST_CASE("cuda trainer: SAM runs two forward and backward passes per step on the device") {
  for (std::int64_t interval : {1, 2}) {
    INFO("interval " << interval);
    auto passes = [interval](auto& trainer) {
      // 4 steps; interval 1: each a SAM step (2 passes); interval 2: every other one. Times the microbatches.
      const auto microbatch = trainer.options().device_train_microbatch_size;
      const std::size_t per_pass = microbatch ? static_cast<std::size_t>(8 / *microbatch) : 1;
      CHECK(trainer.template get<Probe>().input_devices.size() == (interval == 1 ? 8 : 6) * per_pass);
    };
    check_cnn(float_setups(), 4, passes, alg::SAM({.rho = 0.05, .interval = interval}));
  }
}

TEST_CASE("cuda trainer: GradientClipping bounds the gradients on the device") {
  SUBCASE("norm") {
    check_cnn(float_setups(), 3, [](auto& trainer) {
      const auto& log = trainer.template get<GradientLog>();
      for (double n : log.norms) CHECK(n <= 0.01 * (1 + 1e-3));
      for (const auto& d : log.devices) CHECK(d == cuda0());
    }, alg::GradientClipping("norm", 0.01), GradientLog{});
  }
  SUBCASE("value") {
    check_cnn(float_setups(), 3, [](auto& trainer) {
      for (double m : trainer.template get<GradientLog>().max_abs) CHECK(m <= 1e-3 * (1 + 1e-6));
    }, alg::GradientClipping("value", 1e-3), GradientLog{});
  }
  SUBCASE("adaptive") {
    check_cnn(float_setups(), 3, no_extra_checks, alg::GradientClipping("adaptive", 0.01), GradientLog{});
  }
}

TEST_CASE("cuda trainer: LayerFreezing freezes the first layers and trains the rest") {
  auto frozen = [](auto& trainer) {
    CHECK(trainer.template get<alg::LayerFreezing>().last_result().layers_frozen > 0);
    std::size_t not_trained = 0;
    for (const auto& p : trainer.state().model->parameters()) not_trained += p.requires_grad() ? 0 : 1;
    CHECK(not_trained > 0);
  };
  check_cnn(float_setups(), 12, frozen, alg::LayerFreezing(0.0, 1.0));
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints between devices

namespace {

/// A stateful composition on the MLP: EMA (its average is checkpointed), GradientClipping and LabelSmoothing,
/// with SGD momentum (checkpointed by the optimizer). Nothing random: the same run on either device ends within
/// rounding of the other.
using Deterministic = composer::Trainer<alg::EMA, alg::GradientClipping, alg::LabelSmoothing>;

struct DeterministicRun {
  std::unique_ptr<Deterministic> trainer;
  torch::nn::Sequential net{nullptr};
};

DeterministicRun deterministic_run(c10::Device device, const std::string& save_folder, const std::string& load_path,
                                   std::uint64_t init_seed) {
  DeterministicRun run;
  run.net = make_mlp(init_seed);
  composer::TrainerOptions options{.train_dataloader = vector_loader(24, 4),
                                   .max_duration = Time("6ba"),
                                   .optimizers = {sgd(*run.net, 0.1, 0.9)},
                                   .save_folder = save_folder,
                                   .save_interval = Time("3ba"),
                                   .load_path = load_path,
                                   .seed = 23,
                                   .device = device,
                                   .progress_bar = false};
  run.trainer = std::make_unique<Deterministic>(run.net, std::move(options), alg::EMA({.half_life = Time("2ba")}),
                                                alg::GradientClipping("norm", 1.0), alg::LabelSmoothing(0.1));
  return run;
}

std::vector<at::Tensor> ema_values(Deterministic& trainer) {
  return trainer.get<alg::EMA>().ema_parameters().named_parameters().values();
}

void check_resumes_across(c10::Device from, c10::Device to) {
  INFO("written on " << from << ", resumed on " << to);
  const std::string dir = fresh_dir(std::string("across_") + (from.is_cuda() ? "cuda" : "cpu"));
  DeterministicRun reference = deterministic_run(from, dir, "", 1);
  reference.trainer->fit();
  const std::string mid = composer::io::join(dir, "ep0-ba3-rank0.pt");
  REQUIRE(composer::io::exists(mid));

  DeterministicRun resumed = deterministic_run(to, "", mid, 2);  // other initial weights: the checkpoint replaces them
  CHECK(resumed.trainer->state().timestamp.batch().count() == 3);
  auto& state = resumed.trainer->state();
  CHECK_MESSAGE(misplaced(state.model.module(), to, state.optimizers).empty(),
                "after loading:" << misplaced(state.model.module(), to, state.optimizers));
  CHECK_MESSAGE(misplaced_tensors(resumed.trainer->get<alg::EMA>().ema_parameters().named_parameters(), to).empty(),
                "EMA state off " << to);
  resumed.trainer->fit();
  CHECK(state.timestamp.batch().count() == 6);
  CHECK_MESSAGE(misplaced(state.model.module(), to, state.optimizers).empty(),
                "after training:" << misplaced(state.model.module(), to, state.optimizers));
  CHECK(all_close(cpu_parameters(*resumed.net), cpu_parameters(*reference.net), 1e-4));
  CHECK(all_close(ema_values(*resumed.trainer), ema_values(*reference.trainer), 1e-4));
}

}  // namespace

TEST_CASE("cuda trainer: a checkpoint written on CUDA resumes on the CPU, and one written on the CPU on CUDA") {
  require_cuda();
  check_resumes_across(cuda0(), cpu());
  check_resumes_across(cpu(), cuda0());
}

TEST_CASE("cuda trainer: SWA's running average moves with its checkpoint between devices") {
  require_cuda();
  for (const auto& [from, to] : {std::pair{cuda0(), cpu()}, std::pair{cpu(), cuda0()}}) {
    INFO("written on " << from << ", resumed on " << to);
    auto make = [](c10::Device device, torch::nn::Sequential& net, const std::string& folder, const std::string& load) {
      net = make_mlp(5);
      return std::make_unique<composer::Trainer<alg::SWA>>(
          net,
          composer::TrainerOptions{.train_dataloader = vector_loader(32, 4),
                                   .max_duration = Time("8ba"),
                                   .optimizers = {sgd(*net, 0.1, 0.9)},
                                   .save_folder = folder,
                                   .save_interval = Time("4ba"),
                                   .load_path = load,
                                   .seed = 3,
                                   .device = device,
                                   .progress_bar = false},
          alg::SWA({.swa_start = Time("0.25dur"), .swa_end = Time("0.875dur"), .update_interval = Time("1ba")}));
    };
    const std::string dir = fresh_dir(std::string("swa_") + (from.is_cuda() ? "cuda" : "cpu"));
    torch::nn::Sequential reference_net{nullptr}, resumed_net{nullptr};
    auto reference = make(from, reference_net, dir, "");
    reference->fit();
    REQUIRE(reference->get<alg::SWA>().swa_completed());
    auto resumed = make(to, resumed_net, "", composer::io::join(dir, "ep0-ba4-rank0.pt"));
    CHECK(resumed->get<alg::SWA>().swa_started());
    CHECK(misplaced_tensors(resumed->get<alg::SWA>().averaged_parameters(), to).empty());
    resumed->fit();
    CHECK(resumed->get<alg::SWA>().swa_completed());
    CHECK(misplaced(*resumed_net, to, resumed->state().optimizers).empty());
    CHECK(all_close(cpu_parameters(*resumed_net), cpu_parameters(*reference_net), 1e-4));
  }
}

TEST_CASE("cuda trainer: runs with random and model-changing methods resume on the other device and train on") {
  require_cuda();
  SUBCASE("CutOut, MixUp, LabelSmoothing, SAM on the CNN; amp_bf16 on CUDA, fp32 on the CPU") {
    using Methods = composer::Trainer<alg::CutOut, alg::MixUp, alg::LabelSmoothing, alg::SAM, Probe>;
    for (const auto& [from, to] : {std::pair{cuda0(), cpu()}, std::pair{cpu(), cuda0()}}) {
      INFO("written on " << from << ", resumed on " << to);
      const std::string dir = fresh_dir(std::string("methods_") + (from.is_cuda() ? "cuda" : "cpu"));
      auto run = [&](c10::Device device, const std::string& folder, const std::string& load) {
        auto net = make_cnn(1);
        auto options = run_options(*net, image_loader(DataOn::cpu), "4ba", device,
                                   device.is_cuda() ? Precision::amp_bf16 : Precision::fp32);
        options.save_folder = folder;
        options.save_interval = Time("2ba");
        options.load_path = load;
        Methods trainer(net, std::move(options), alg::CutOut(), alg::MixUp(0.2), alg::LabelSmoothing(0.1),
                        alg::SAM(0.05), Probe{});
        trainer.fit();
        check_trained_on(trainer, device, 4, device.is_cuda() ? at::kBFloat16 : at::kFloat);
      };
      run(from, dir, "");
      run(to, "", composer::io::join(dir, "ep0-ba2-rank0.pt"));
    }
  }
  SUBCASE("BlurPool, SqueezeExcite, StochasticDepth, ChannelsLast, LabelSmoothing on the ResNet") {
    using Methods = composer::Trainer<alg::BlurPool, alg::SqueezeExcite, alg::StochasticDepth, alg::ChannelsLast,
                                      alg::LabelSmoothing, Probe>;
    for (const auto& [from, to] : {std::pair{cuda0(), cpu()}, std::pair{cpu(), cuda0()}}) {
      INFO("written on " << from << ", resumed on " << to);
      const std::string dir = fresh_dir(std::string("surgery_") + (from.is_cuda() ? "cuda" : "cpu"));
      auto run = [&](c10::Device device, const std::string& folder, const std::string& load) {
        auto net = make_resnet(0.0, 4);
        auto options = run_options(*net, image_loader(DataOn::cpu), "4ba", device);
        options.save_folder = folder;
        options.save_interval = Time("2ba");
        options.load_path = load;
        Methods trainer(net, std::move(options), alg::BlurPool({.min_channels = 8}),
                        alg::SqueezeExcite({.latent_channels = 0.5, .min_channels = 16}),
                        alg::StochasticDepth({.drop_rate = 0.2}), alg::ChannelsLast(), alg::LabelSmoothing(0.1),
                        Probe{});
        trainer.fit();
        check_trained_on(trainer, device, 4);
      };
      run(from, dir, "");
      run(to, "", composer::io::join(dir, "ep0-ba2-rank0.pt"));
    }
  }
}
