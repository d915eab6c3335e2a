// Steps per second of composer::Trainer against a hand-written LibTorch loop doing the same work on the
// same model and data, in one run:
//   hand_written/plain  vs  trainer/plain        (Trainer<>: no method)
//   hand_written/mixup  vs  trainer/mixup        (Trainer<MixUpPolicy>: MixUp as the Welcome Tour writes it)
// Each benchmark iteration trains 16 steps (batches of 128 28x28 images through a small CNN); the hand-written
// loop draws the same batches from the same loader, runs forward, loss, backward and the SGD step, and reads
// the loss each step, as the Trainer does for logging and its NaN check.
#include <benchmark/benchmark.h>

#include <composer/composer.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/models/simple_cnn.hpp>

#include <torch/optim/sgd.h>

#include <cmath>
#include <cstdlib>

namespace {

constexpr int threads = 2;
constexpr std::int64_t steps_per_iteration = 16;
constexpr std::int64_t batch_size = 128;

composer::data::TensorLoader make_loader() {
  torch::manual_seed(0);
  auto images = torch::randint(0, 256, {batch_size * 32, 1, 28, 28}, torch::kUInt8);
  auto labels = torch::randint(0, 10, {batch_size * 32});
  return composer::data::TensorLoader(images, labels, composer::data::TensorLoaderOptions{batch_size, true, true, 1},
                                      [](const at::Tensor& x) { return composer::data::normalize_fashion_mnist(x); });
}

composer::models::SimpleCNN make_model() {
  torch::manual_seed(1);
  return composer::models::SimpleCNN(composer::models::SimpleCNNOptions{.width = 16, .hidden = 64});
}

std::shared_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& model) {
  return std::make_shared<torch::optim::SGD>(model.parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
}

// MixUp exactly as the Welcome Tour writes it.
struct MixUpPolicy {
  static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER, composer::Event::AFTER_LOSS};
  at::Tensor permuted_target;
  double mixing = 0.0;
  void apply(composer::Event event, composer::State& state) {
    if (event == composer::Event::AFTER_DATALOADER) {
      auto [x, y_perm, m] = composer::functional::mixup_batch(state.batch.inputs, state.batch.targets, {}, 0.2);
      state.batch.inputs = x;
      permuted_target = y_perm;
      mixing = m;
    } else {
      state.loss = state.loss * (1 - mixing) + mixing * state.model.loss(state.outputs, permuted_target);
    }
  }
};

template <bool WithMixUp>
void BM_hand_written(benchmark::State& bench) {
  at::set_num_threads(threads);
  auto model = make_model();
  auto optimizer = make_sgd(*model);
  auto loader = make_loader();
  std::int64_t epoch = 0;
  auto it = loader.begin();
  for (auto _ : bench) {
    for (std::int64_t step = 0; step < steps_per_iteration; ++step) {
      if (it == loader.end()) {
        loader.set_epoch(++epoch);
        it = loader.begin();
      }
      composer::Batch batch = *it;
      ++it;
      at::Tensor permuted;
      double mixing = 0.0;
      if constexpr (WithMixUp) {
        auto [x, y_perm, m] = composer::functional::mixup_batch(batch.inputs, batch.targets, {}, 0.2);
        batch.inputs = x;
        permuted = y_perm;
        mixing = m;
      }
      optimizer->zero_grad();
      auto outputs = model->forward(batch.inputs);
      auto loss = composer::cross_entropy_loss(outputs, batch.targets);
      if constexpr (WithMixUp) loss = loss * (1 - mixing) + mixing * composer::cross_entropy_loss(outputs, permuted);
      loss.backward();
      optimizer->step();
      if (!std::isfinite(loss.item<double>())) std::abort();
    }
  }
  bench.counters["steps/s"] = benchmark::Counter(static_cast<double>(bench.iterations() * steps_per_iteration),
                                                  benchmark::Counter::kIsRate);
  bench.counters["threads"] = threads;
}

template <class... Policies>
void BM_trainer(benchmark::State& bench) {
  at::set_num_threads(threads);
  auto model = make_model();
  composer::Trainer<Policies...> trainer(model, {.train_dataloader = make_loader(),
                                                 .optimizers = {make_sgd(*model)},
                                                 .seed = 1,
                                                 .progress_bar = false});
  for (auto _ : bench) trainer.fit(composer::Time::from_batch(steps_per_iteration));
  bench.counters["steps/s"] = benchmark::Counter(static_cast<double>(bench.iterations() * steps_per_iteration),
                                                  benchmark::Counter::kIsRate);
  bench.counters["threads"] = threads;
}

BENCHMARK(BM_hand_written<false>)->Name("hand_written/plain")->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_trainer<>)->Name("trainer/plain")->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_hand_written<true>)->Name("hand_written/mixup")->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(BM_trainer<MixUpPolicy>)->Name("trainer/mixup")->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
