// Data-parallel set-up in one process: the launcher's variables checked with messages naming them, a rendezvous
// that cannot be reached failing within its timeout, the sharding hook, metric states summed as over ranks, and a
// checkpoint of another world size refused.
#include <composer/composer.hpp>
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>

namespace process_group_setup_test {

namespace dist = composer::dist;

// Sets the launcher's variables for one test and restores them after it.
class Environment {
 public:
  explicit Environment(const std::map<std::string, std::string>& values) {
    for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) {
      if (const char* old = std::getenv(name)) saved_[name] = old;
      ::unsetenv(name);
    }
    for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~Environment() {
    for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

std::string error_of(const std::map<std::string, std::string>& values) {
  Environment environment(values);
  try {
    dist::options_from_environment();
  } catch (const dist::DistributedError& error) {
    return error.what();
  }
  return "no error";
}

const std::map<std::string, std::string> complete{
    {"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29501"}};

std::map<std::string, std::string> with(std::string name, std::string value) {
  auto values = complete;
  values[name] = value;
  return values;
}

std::map<std::string, std::string> without(const std::string& name) {
  auto values = complete;
  values.erase(name);
  return values;
}

TEST_CASE("the launcher's variables are read as torchrun sets them, and each wrong or missing one is named") {
  {
    Environment environment(complete);
    const auto options = dist::options_from_environment(std::chrono::seconds(7));
    REQUIRE(options.has_value());
    CHECK(options->world_size == 4);
    CHECK(options->rank == 3);
    CHECK(options->local_rank == 1);
    CHECK(options->master_addr == "10.1.2.3");
    CHECK(options->master_port == 29501);
    CHECK(options->timeout == std::chrono::seconds(7));
  }
  {
    Environment environment({});
    CHECK_FALSE(dist::options_from_environment().has_value());  // a single process
    CHECK(dist::default_group() == nullptr);
  }
  {
    auto values = without("LOCAL_RANK");
    Environment environment(values);
    CHECK(dist::options_from_environment()->local_rank == 3);  // defaults to RANK
  }
  CHECK_MESSAGE(error_of(without("RANK")).find("WORLD_SIZE is set but RANK is not") != std::string::npos,
                error_of(without("RANK")));
  CHECK(error_of(without("MASTER_ADDR")).find("MASTER_ADDR is not") != std::string::npos);
  CHECK(error_of(without("MASTER_PORT")).find("MASTER_PORT is not") != std::string::npos);
  CHECK(error_of({{"RANK", "0"}}).find("RANK is set but WORLD_SIZE is not") != std::string::npos);
  CHECK(error_of(with("RANK", "x1")).find("RANK must be a whole number, got 'x1'") != std::string::npos);
  CHECK(error_of(with("WORLD_SIZE", "2.5")).find("WORLD_SIZE must be a whole number, got '2.5'") != std::string::npos);
  CHECK(error_of(with("RANK", "4")).find("RANK must be in [0, WORLD_SIZE) = [0, 4), got 4") != std::string::npos);
  CHECK(error_of(with("WORLD_SIZE", "0")).find("WORLD_SIZE must be at least 1, got 0") != std::string::npos);
  CHECK(error_of(with("MASTER_PORT", "70000")).find("MASTER_PORT must be in [1, 65535], got 70000") !=
        std::string::npos);
  CHECK(error_of(with("LOCAL_RANK", "-1")).find("LOCAL_RANK must not be negative") != std::string::npos);
}

TEST_CASE("a rank whose rendezvous never opens fails within its timeout, naming the address") {
  dist::DistributedOptions options;
  options.world_size = 2;
  options.rank = 1;
  options.master_addr = "127.0.0.1";
  options.master_port = 9;  // the discard port: nothing serves a rendezvous there
  options.timeout = std::chrono::seconds(2);
  const auto started = std::chrono::steady_clock::now();
  std::string message;
  try {
    dist::ProcessGroup::create(options);
  } catch (const dist::DistributedError& error) {
    message = error.what();
  }
  CHECK_MESSAGE(message.find("rank 1 of 2 could not reach the rendezvous store at 127.0.0.1:9") != std::string::npos,
                message);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));
}

TEST_CASE("any loader with set_shard can be sharded; others say they cannot") {
  const torch::Tensor x = torch::arange(10).reshape({10, 1}).to(torch::kFloat);
  composer::data::AnyLoader sharded = composer::data::TensorLoader(x, torch::arange(10), 2);
  CHECK(sharded.shard(3, 1));
  sharded.start_epoch(0);
  // Rank 1 of 3 over 10 rows padded to 12: rows 1, 4, 7, 10 -> 0 (the padding repeats the start).
  CHECK(torch::equal(sharded.next()->targets, torch::tensor({1, 4})));
  CHECK(torch::equal(sharded.next()->targets, torch::tensor({7, 0})));
  CHECK_FALSE(sharded.next().has_value());
  CHECK_THROWS_WITH_AS(sharded.shard(2, 2), doctest::Contains("rank must be in [0, num_replicas)"), std::invalid_argument);

  std::vector<composer::Batch> batches{{x, torch::arange(10)}};
  composer::data::AnyLoader plain = batches;
  CHECK_FALSE(plain.shard(2, 0));
}

TEST_CASE("metric states summed as over ranks give the metrics of all samples") {
  const torch::Tensor logits_a = torch::tensor({{2.0, 0.0}, {0.0, 1.0}, {3.0, 0.0}});
  const torch::Tensor targets_a = torch::tensor({0, 0, 0});
  const torch::Tensor logits_b = torch::tensor({{0.0, 2.0}, {1.0, 0.0}});
  const torch::Tensor targets_b = torch::tensor({1, 0});
  composer::metrics::MetricCollection rank_a{composer::metrics::Accuracy{}, composer::metrics::PerClassAccuracy(2),
                                             composer::metrics::CrossEntropy{}};
  composer::metrics::MetricCollection rank_b = rank_a;
  composer::metrics::MetricCollection together = rank_a;
  rank_a.update(logits_a, targets_a);
  rank_b.update(logits_b, targets_b);
  together.update(logits_a, targets_a);
  together.update(logits_b, targets_b);
  REQUIRE(rank_a.reducible());
  // The all-reduce's sum, done by hand.
  composer::metrics::MetricCollection reduced = rank_a;
  reduced.load_sum_state(rank_a.sum_state() + rank_b.sum_state());
  const auto values = reduced.compute();
  const auto expected = together.compute();
  CHECK(values.at("accuracy") == doctest::Approx(4.0 / 5.0));  // 2 of 3 and 2 of 2
  CHECK(values.at("accuracy/class_0") == doctest::Approx(3.0 / 4.0));
  CHECK(values.at("accuracy/class_1") == doctest::Approx(1.0));
  for (const auto& [name, value] : expected) CHECK(values.at(name) == doctest::Approx(value).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(reduced.load_sum_state(torch::zeros({3}, torch::kDouble)), doctest::Contains("got 3 values"),
                       std::invalid_argument);
}

TEST_CASE("a checkpoint saved by data-parallel ranks is refused by a single process, naming both sizes") {
  const std::string path = composer::io::join(composer::io::temp_directory(), "composer_world_size_test.pt");
  auto make = [] {
    torch::manual_seed(3);
    return torch::nn::Linear(2, 2);
  };
  auto saved_model = make();
  composer::State state(composer::Model(saved_model.ptr()));
  std::vector<double> lrs{0.1};
  state.optimizers = {std::make_shared<torch::optim::SGD>(saved_model->parameters(), torch::optim::SGDOptions(0.1))};
  composer::LossScaler scaler(false);
  const at::Tensor generator_state = at::detail::getDefaultCPUGenerator().get_state();
  composer::checkpoint::TrainingParts parts{state, lrs, scaler, ""};
  parts.rank_cpu_rng_states = {generator_state, generator_state};  // two ranks
  composer::BasicEngine<composer::State> engine(state);
  composer::checkpoint::save(path, parts, engine);

  auto model = make();
  composer::TrainerOptions options;
  options.optimizers = {std::make_shared<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.1))};
  options.load_path = path;
  options.progress_bar = false;
  options.eval_metrics = {};
  CHECK_THROWS_WITH_AS(composer::Trainer<>(composer::Model(model.ptr()), std::move(options)),
                       doctest::Contains("was saved by a run of 2 data-parallel ranks; resume it with the same number "
                                         "(this run has 1)"),
                       composer::CheckpointError);
  composer::io::remove(path);
}

}  // namespace process_group_setup_test
