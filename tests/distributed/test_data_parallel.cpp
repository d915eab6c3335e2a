// Data-parallel training, run as every rank of a run started by composer_launch (2 and 3 processes over Gloo on
// the loopback interface): each test case runs on every rank in the same order, so their collectives meet.
// Expectations are independent of the Trainer: a hand-written single-process SGD loop over the same global batches.
#include <composer/composer.hpp>
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace dp_test {

namespace dist = composer::dist;
namespace io = composer::io;
using composer::Time;

// The run's group, with a short timeout so that a broken test fails instead of waiting.
std::shared_ptr<dist::ProcessGroup> group() {
  const auto options = dist::options_from_environment(std::chrono::seconds(30));
  REQUIRE_MESSAGE(options.has_value(), "run these tests under composer_launch -n N");
  auto made = dist::initialize(*options);
  REQUIRE(made);
  return made;
}

// A small classifier, the same on every rank (seeded); with `dropout`, it draws from each rank's generator; with
// `batch_norm`, each rank normalises with its own batch statistics and keeps its own running statistics.
struct Net : torch::nn::Module {
  Net(bool dropout, bool batch_norm) {
    fc1 = register_module("fc1", torch::nn::Linear(8, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 4));
    drop = register_module("drop", torch::nn::Dropout(dropout ? 0.25 : 0.0));
    if (batch_norm) norm = register_module("norm", torch::nn::BatchNorm1d(16));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor hidden = fc1(x);
    if (norm) hidden = norm(hidden);
    return fc2(drop(torch::relu(hidden)));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::BatchNorm1d norm{nullptr};
};

std::shared_ptr<Net> make_net(bool dropout = false, bool batch_norm = false) {
  torch::manual_seed(7);
  return std::make_shared<Net>(dropout, batch_norm);
}

std::vector<torch::Tensor> buffers_of(const std::shared_ptr<Net>& net) {
  std::vector<torch::Tensor> out;
  for (const auto& b : net->buffers()) out.push_back(b.detach().clone().to(torch::kDouble));
  return out;
}

// N rows of 8 features whose class (of 4) is the argmax of a fixed projection, the same on every rank.
std::pair<torch::Tensor, torch::Tensor> data(std::int64_t n, std::uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  torch::Tensor x = at::randn({n, 8}, generator);
  torch::Tensor w = at::randn({8, 4}, generator);
  return {x, x.matmul(w).argmax(1)};
}

std::vector<torch::Tensor> parameters_of(const std::shared_ptr<Net>& net) {
  std::vector<torch::Tensor> out;
  for (const auto& p : net->parameters()) out.push_back(p.detach().clone());
  return out;
}

// One SGD step of a single process on the whole global batch (the reference).
void reference_step(const std::shared_ptr<Net>& net, torch::optim::SGD& sgd, const torch::Tensor& x,
                    const torch::Tensor& y) {
  sgd.zero_grad();
  torch::nn::functional::cross_entropy(net->forward(x), y).backward();
  sgd.step();
}

// Whether every rank holds bit-identical `tensors`.
bool identical_on_every_rank(const dist::ProcessGroup& g, const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  const torch::Tensor mine = torch::cat(flat);
  for (const auto& other : g.all_gather(mine, "comparison of the ranks' parameters"))
    if (!torch::equal(other, mine)) return false;
  return true;
}

composer::TrainerOptions options_for(composer::data::TensorLoader loader, const std::shared_ptr<Net>& net, double lr,
                                     Time duration) {
  composer::TrainerOptions options;
  options.train_dataloader = std::move(loader);
  options.max_duration = duration;
  options.optimizers = {std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(lr).momentum(0.9))};
  options.progress_bar = false;
  options.seed = 17;
  return options;
}

TEST_CASE("one data-parallel step equals one process stepping on the global batch, with and without microbatches") {
  const auto g = group();
  const std::int64_t world = g->world_size(), per_rank = 6;
  const auto [x, y] = data(world * per_rank, 11);
  for (const std::int64_t microbatch : {std::int64_t{0}, std::int64_t{4}}) {
    CAPTURE(microbatch);
    auto net = make_net();
    auto reference = make_net();
    torch::optim::SGD reference_sgd(reference->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    reference_step(reference, reference_sgd, x, y);

    auto options = options_for(composer::data::TensorLoader(x, y, per_rank), net, 0.1, Time::from_batch(1));
    if (microbatch > 0) options.device_train_microbatch_size = microbatch;
    composer::Trainer<> trainer(composer::Model(net), std::move(options));
    REQUIRE(trainer.process_group() != nullptr);
    CHECK(trainer.state().rank == g->rank());
    CHECK(trainer.state().world_size == world);
    trainer.fit();

    // Time counts the global batch: every rank's samples.
    CHECK(trainer.state().timestamp.sample().count() == world * per_rank);
    CHECK(trainer.state().timestamp.batch().count() == 1);
    const auto mine = parameters_of(net);
    const auto expected = parameters_of(reference);
    for (std::size_t i = 0; i < mine.size(); ++i) CHECK(torch::allclose(mine[i], expected[i], 1e-5, 1e-6));
    CHECK(identical_on_every_rank(*g, mine));
  }
}

// Scales the gradients of `parameters` by min(1, threshold / (‖g‖ + 1e-6)) (clip_grad_norm_, written out).
void clip_by_norm(const std::vector<torch::Tensor>& parameters, double threshold) {
  double squares = 0.0;
  for (const auto& p : parameters) squares += p.grad().pow(2).sum().item<double>();
  const double coefficient = std::min(1.0, threshold / (std::sqrt(squares) + 1e-6));
  for (const auto& p : parameters) p.grad().mul_(coefficient);
}

TEST_CASE("GradientClipping and SAM's two passes act on the gradients averaged over the ranks") {
  const auto g = group();
  const std::int64_t world = g->world_size(), per_rank = 6;
  const auto [x, y] = data(world * per_rank, 61);
  const double rho = 0.5, threshold = 0.05, lr = 0.1;

  // The reference, one process on the global batch: SAM (Foret et al. 2021) around SGD, each pass's gradients
  // clipped to a global norm of `threshold`: g1 at w, e = rho g1 / |g1|, g2 at w + e, then w <- w - lr g2.
  auto reference = make_net();
  const auto parameters = reference->parameters();
  auto pass = [&] {
    for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
    torch::nn::functional::cross_entropy(reference->forward(x), y).backward();
    clip_by_norm(parameters, threshold);
  };
  pass();
  std::vector<torch::Tensor> ascent;
  {
    torch::NoGradGuard no_grad;
    double squares = 0.0;
    for (const auto& p : parameters) squares += p.grad().pow(2).sum().item<double>();
    for (auto& p : parameters) {
      ascent.push_back(p.grad() * (rho / (std::sqrt(squares) + 1e-12)));
      p.add_(ascent.back());
    }
  }
  pass();
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < parameters.size(); ++i) parameters[i].sub_(ascent[i]).sub_(parameters[i].grad() * lr);
  }

  auto net = make_net();
  composer::TrainerOptions options;
  options.train_dataloader = composer::data::TensorLoader(x, y, per_rank);
  options.max_duration = Time::from_batch(1);
  options.optimizers = {std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(lr))};
  options.progress_bar = false;
  options.seed = 17;
  composer::Trainer<composer::algorithms::SAM, composer::algorithms::GradientClipping, composer::algorithms::EMA>
      trainer(composer::Model(net), std::move(options), composer::algorithms::SAM(rho),
              composer::algorithms::GradientClipping("norm", threshold),
              composer::algorithms::EMA(composer::algorithms::EMAOptions{.half_life = Time::from_batch(2)}));
  trainer.fit();
  const auto mine = parameters_of(net);
  const auto expected = parameters_of(reference);
  for (std::size_t i = 0; i < mine.size(); ++i) CHECK(torch::allclose(mine[i], expected[i], 1e-5, 1e-6));
  CHECK(identical_on_every_rank(*g, mine));
  // EMA's average follows the synchronised weights: the same on every rank.
  auto ema_net = make_net();
  trainer.get<composer::algorithms::EMA>().get_ema_model(*ema_net);
  CHECK(identical_on_every_rank(*g, parameters_of(ema_net)));
}

TEST_CASE("a short data-parallel run trains and evaluates as one process on the same global batches") {
  const auto g = group();
  const std::int64_t world = g->world_size(), per_rank = 4, batches = 6, epochs = 2;
  const auto [x, y] = data(world * per_rank * batches, 21);
  const auto [test_x, test_y] = data(world * 20, 22);

  // The reference: one process, global batches of world * per_rank rows in the data set's order.
  auto reference = make_net();
  torch::optim::SGD sgd(reference->parameters(), torch::optim::SGDOptions(0.2).momentum(0.9));
  for (int e = 0; e < epochs; ++e)
    for (std::int64_t b = 0; b < batches; ++b)
      reference_step(reference, sgd, x.narrow(0, b * world * per_rank, world * per_rank),
                     y.narrow(0, b * world * per_rank, world * per_rank));
  torch::NoGradGuard no_grad;
  const double reference_accuracy =
      reference->forward(test_x).argmax(1).eq(test_y).to(torch::kDouble).mean().item<double>();

  auto net = make_net();
  auto options = options_for(composer::data::TensorLoader(x, y, per_rank), net, 0.2, Time::from_epoch(epochs));
  options.eval_dataloader = composer::data::TensorLoader(test_x, test_y, 5);
  options.train_metrics = composer::metrics::classification_metrics();
  composer::Trainer<> trainer(composer::Model(net), std::move(options));
  trainer.fit();
  const auto values = trainer.eval().at("eval");
  CHECK(values.at("accuracy") == doctest::Approx(reference_accuracy).epsilon(1e-12));
  CHECK(trainer.state().timestamp.sample().count() == epochs * world * per_rank * batches);
  const auto mine = parameters_of(net);
  const auto expected = parameters_of(reference);
  for (std::size_t i = 0; i < mine.size(); ++i) CHECK(torch::allclose(mine[i], expected[i], 1e-4, 1e-5));
  CHECK(identical_on_every_rank(*g, mine));
  // The training accuracy of the last epoch counts every rank's samples: a multiple of 1 / (rows per epoch).
  const double train_accuracy = trainer.state().train_metric_values.at("train").at("accuracy");
  const double rows = static_cast<double>(world * per_rank * batches);
  CHECK(std::abs(train_accuracy * rows - std::round(train_accuracy * rows)) < 1e-9);
}

TEST_CASE("a data-parallel checkpoint resumes bit-identically, each rank taking back its own generator") {
  const auto g = group();
  const std::int64_t per_rank = 4;
  const auto [x, y] = data(g->world_size() * per_rank * 5, 31);
  const std::string folder =
      io::join(io::temp_directory(), "composer_dp_test_" + std::string(std::getenv("MASTER_PORT")));
  if (g->rank() == 0) {
    io::remove_all(folder);
    io::create_directories(folder);
  }
  g->barrier("test folder");
  auto shuffled = [&] {
    return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{.batch_size = per_rank, .shuffle = true, .seed = 5});
  };

  auto straight_net = make_net(/*dropout=*/true, /*batch_norm=*/true);
  {
    auto options = options_for(shuffled(), straight_net, 0.05, Time::from_batch(8));
    options.save_folder = folder;
    options.save_interval = Time::from_batch(3);
    composer::Trainer<> straight(composer::Model(straight_net), std::move(options));
    straight.fit();
  }
  // Rank 0 wrote every checkpoint; the others wrote none.
  if (g->rank() == 0) CHECK(io::is_regular_file(io::join(folder, "ep0-ba3-rank0.pt")));
  CHECK_FALSE(io::is_regular_file(io::join(folder, "ep0-ba3-rank1.pt")));

  auto resumed_net = make_net(/*dropout=*/true, /*batch_norm=*/true);
  auto options = options_for(shuffled(), resumed_net, 0.05, Time::from_batch(8));
  options.load_path = io::join(folder, "ep0-ba3-rank0.pt");
  composer::Trainer<> resumed(composer::Model(resumed_net), std::move(options));
  CHECK(resumed.state().timestamp.batch().count() == 3);
  resumed.fit();
  const auto a = parameters_of(straight_net);
  const auto b = parameters_of(resumed_net);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
  CHECK(identical_on_every_rank(*g, b));
  // The running statistics each rank kept (rank 0's as of the batch before, updated by its own last batch), in
  // both runs alike.
  const auto straight_buffers = buffers_of(straight_net);
  const auto resumed_buffers = buffers_of(resumed_net);
  REQUIRE(straight_buffers.size() == 3);  // running mean, variance, batches tracked
  for (std::size_t i = 0; i < straight_buffers.size(); ++i) CHECK(torch::equal(straight_buffers[i], resumed_buffers[i]));

  // Ranks that load different checkpoints are refused before they train out of step.
  auto astray_net = make_net(/*dropout=*/true, /*batch_norm=*/true);
  auto astray = options_for(shuffled(), astray_net, 0.05, Time::from_batch(8));
  const auto saved = composer::CheckpointSaver::checkpoints_in(folder, 0);  // ba3, ba6, ba8
  REQUIRE(saved.size() == 3);
  astray.load_path = g->rank() == 0 ? saved.front() : saved.back();
  CHECK_THROWS_WITH_AS(composer::Trainer<>(composer::Model(astray_net), std::move(astray)),
                       doctest::Contains("every rank must load the same checkpoint"), dist::DistributedError);
  g->barrier("test end");
  if (g->rank() == 0) io::remove_all(folder);
}

TEST_CASE("a rank that leaves makes the others fail with an error naming the collective, not hang") {
  // Run alone by its own ctest entries (distributed.rank_leaves, distributed.rank_killed), which set the variable.
  REQUIRE_MESSAGE(std::getenv("COMPOSER_DP_LEAVING_RANK"), "set COMPOSER_DP_LEAVING_RANK to the rank that leaves");
  const auto g = group();
  const auto [x, y] = data(g->world_size() * 4 * 20, 51);
  auto net = make_net();
  auto options = options_for(composer::data::TensorLoader(x, y, 4), net, 0.1, Time::from_batch(20));
  composer::Trainer<> trainer(composer::Model(net), std::move(options));
  if (g->rank() == std::atoi(std::getenv("COMPOSER_DP_LEAVING_RANK"))) {
    trainer.fit(Time::from_batch(2));
    if (std::getenv("COMPOSER_DP_KILLED")) std::raise(SIGKILL);  // killed, as by the out-of-memory killer
    std::_Exit(0);
  }
  // This rank's verdict is its exit status: the group cannot be closed cleanly without the rank that left, so the
  // process ends here.
  const auto started = std::chrono::steady_clock::now();
  std::string message;
  try {
    trainer.fit();
  } catch (const dist::DistributedError& error) {
    message = error.what();
  }
  const auto waited = std::chrono::steady_clock::now() - started;
  const bool named = message.find("all-reduce of the gradients") != std::string::npos &&
                     message.find("rank " + std::to_string(g->rank()) + " of") != std::string::npos;
  std::printf("rank %d: %s\n", g->rank(), message.empty() ? "training went on without the rank that left" : message.c_str());
  std::fflush(stdout);
  std::_Exit(named && waited < std::chrono::seconds(35) ? 0 : 1);
}

}  // namespace dp_test
