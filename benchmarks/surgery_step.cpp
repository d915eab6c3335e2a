// Cost of one training step of the Fashion-MNIST `resnet` preset's network (a ResNet-8 for 1x28x28 images:
// one basic block per stage, width 32, stem max pool) with each model-surgery method applied alone, all four
// together, and none, in one run:
//   step/none             the plain ResNet-8
//   step/blurpool         apply_blurpool with Composer's defaults (4 BlurConv2d, 1 BlurMaxPool2d)
//   step/channels_last    apply_channels_last (4-D weights and buffers in NHWC; the batch stays NCHW, as the
//                         Trainer feeds it)
//   step/squeeze_excite   apply_squeeze_excite(latent_channels = 0.25, min_channels = 64) (4 gated convolutions)
//   step/stochastic_depth apply_stochastic_depth("ResNetBasicBlock", "block", 0.1, "linear") (3 stochastic
//                         blocks; the drop rates are the preset's final ones, 1/30, 2/30, 3/30)
//   step/all              the four in the preset's order
// A step: forward of a 128x1x28x28 batch in train mode, cross-entropy, backward, SGD (Nesterov momentum 0.9,
// weight decay 5e-4) step, gradients set to none; the loss is read each step, as the Trainer does. The batch and
// labels are drawn once, outside the timed loop.
//
// Threads: at::set_num_threads(2) by default; COMPOSER_BENCH_THREADS=N overrides it. The count is printed in the
// context (`at_threads`).
#include <benchmark/benchmark.h>

#include <composer/functional/blurpool.hpp>
#include <composer/functional/channels_last.hpp>
#include <composer/functional/squeeze_excite.hpp>
#include <composer/functional/stochastic_depth.hpp>
#include <composer/models/resnet.hpp>

#include <ATen/Parallel.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace cf = composer::functional;
using Optimizers = std::vector<std::shared_ptr<torch::optim::Optimizer>>;

enum Method : unsigned { blurpool = 1, channels_last = 2, squeeze_excite = 4, stochastic_depth = 8 };

// The preset's network with the `methods` applied in the preset's order, and its optimizer.
struct Setup {
  composer::models::ResNet model{composer::models::ResNetOptions{
      .blocks_per_stage = {1, 1, 1}, .width = 32, .in_channels = 1, .num_classes = 10, .stem_max_pool = true}};
  std::shared_ptr<torch::optim::SGD> sgd = std::make_shared<torch::optim::SGD>(
      model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(5e-4));

  explicit Setup(unsigned methods) {
    const Optimizers optimizers{sgd};
    if (methods & blurpool) (void)cf::apply_blurpool(*model, optimizers);
    if (methods & channels_last) (void)cf::apply_channels_last(*model);
    if (methods & squeeze_excite) (void)cf::apply_squeeze_excite(*model, 0.25, 64, optimizers);
    if (methods & stochastic_depth)
      (void)cf::apply_stochastic_depth(*model, "ResNetBasicBlock", "block", 0.1, "linear", optimizers);
    model->train();
  }
};

// Gradients set to none, as the Trainer does before each batch (Composer's zero_grad(set_to_none=True)).
void drop_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = at::Tensor();
}

void step(benchmark::State& state, unsigned methods) {
  torch::manual_seed(0);
  Setup setup(methods);
  const at::Tensor x = at::randn({128, 1, 28, 28});
  const at::Tensor y = at::randint(0, 10, {128});
  for (int i = 0; i < 3; ++i) {  // warm-up: allocator, momentum buffers, kernels' first-call set-up
    drop_gradients(*setup.sgd);
    torch::nn::functional::cross_entropy(setup.model->forward(x), y).backward();
    setup.sgd->step();
  }
  for (auto _ : state) {
    drop_gradients(*setup.sgd);
    const at::Tensor loss = torch::nn::functional::cross_entropy(setup.model->forward(x), y);
    loss.backward();
    setup.sgd->step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.SetItemsProcessed(state.iterations() * x.size(0));
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  if (const char* env = std::getenv("COMPOSER_BENCH_THREADS")) threads = std::max(1, std::atoi(env));
  at::set_num_threads(threads);
  benchmark::AddCustomContext("at_threads", std::to_string(at::get_num_threads()));

  const std::vector<std::pair<std::string, unsigned>> variants{
      {"none", 0u},
      {"blurpool", blurpool},
      {"channels_last", channels_last},
      {"squeeze_excite", squeeze_excite},
      {"stochastic_depth", stochastic_depth},
      {"all", blurpool | channels_last | squeeze_excite | stochastic_depth}};
  for (const auto& [name, methods] : variants)
    benchmark::RegisterBenchmark(("step/" + name).c_str(), [m = methods](benchmark::State& s) { step(s, m); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
