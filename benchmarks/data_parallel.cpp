// Step time of the main job's model (SimpleCNN, width 32, hidden 128) trained on a global batch of 128 28x28
// images, run three ways on the same machine so that the ratios say what data parallelism buys:
//   bench_data_parallel --threads 1                                   one process, one thread
//   bench_data_parallel --threads 2                                   one process, two threads
//   composer_launch -n 2 -- bench_data_parallel --threads 1           two ranks of one thread, 64 images each
// Each iteration trains one global batch (Trainer::fit of one batch); the counter `comm_share` is the share of the
// time a rank waited for the gradient all-reduces after its backward pass (the communication the backward pass did
// not hide), `ranks` the world size. Every rank runs the same fixed number of iterations, so their collectives
// meet; only rank 0 reports.
#include <benchmark/benchmark.h>

#include <composer/composer.hpp>
#include <composer/models/simple_cnn.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

constexpr std::int64_t global_batch = 128;
constexpr std::int64_t iterations = 60;

void BM_main_job_step(benchmark::State& bench) {
  const auto group = composer::dist::default_group();
  const std::int64_t ranks = group ? group->world_size() : 1;
  torch::manual_seed(0);
  auto images = torch::randint(0, 256, {global_batch * 16, 1, 28, 28}, torch::kUInt8);
  auto labels = torch::randint(0, 10, {global_batch * 16});
  composer::data::TensorLoader loader(images, labels,
                                      composer::data::TensorLoaderOptions{global_batch / ranks, true, true, 1},
                                      [](const at::Tensor& x) { return composer::data::normalize_fashion_mnist(x); });
  torch::manual_seed(1);
  composer::models::SimpleCNN model(composer::models::SimpleCNNOptions{.width = 32, .hidden = 128});
  composer::TrainerOptions options;
  options.train_dataloader = std::move(loader);
  options.max_duration = composer::Time::from_batch(1);
  options.optimizers = {std::make_shared<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9))};
  options.progress_bar = false;
  options.seed = 17;
  options.eval_metrics = {};
  composer::Trainer<> trainer(composer::Model(model.ptr()), std::move(options));
  trainer.fit();  // warm-up: the first step allocates
  const double waited_before = trainer.gradient_wait_seconds();
  const auto started = std::chrono::steady_clock::now();
  for (auto _ : bench) trainer.fit(composer::Time::from_batch(1));
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  bench.counters["ranks"] = static_cast<double>(ranks);
  bench.counters["threads"] = static_cast<double>(at::get_num_threads());
  bench.counters["comm_share"] = (trainer.gradient_wait_seconds() - waited_before) / total;
  bench.counters["images/s"] = benchmark::Counter(static_cast<double>(global_batch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_main_job_step)->Iterations(iterations)->Unit(benchmark::kMillisecond)->UseRealTime();

// Reports nothing: the ranks other than 0.
class QuietReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  at::set_num_threads(threads);
  at::set_num_interop_threads(1);
  benchmark::Initialize(&argc, argv);
  const char* rank = std::getenv("RANK");
  if (rank && std::string(rank) != "0") {
    QuietReporter quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
}
