// Token time: the Trainer counts the tokens of token batches, and trains, evaluates, saves and schedules in `tok`.
#include <torch/torch.h>

#include <composer/core/batch.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>
#include <composer/metrics/language.hpp>
#include <composer/models/gpt.hpp>
#include <composer/optim/schedulers.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace io = composer::io;
namespace models = composer::models;
using composer::Time;

// 12 sequences of 8 tokens over a vocabulary of 5, in batches of 2: 16 tokens per batch, 6 batches per epoch.
composer::data::TensorLoader token_loader() {
  torch::manual_seed(0);
  const auto tokens = torch::randint(0, 5, {12, 9}, torch::kLong);
  return composer::data::TensorLoader(tokens.narrow(1, 0, 8).contiguous(), tokens.narrow(1, 1, 8).contiguous(),
                                      composer::data::TensorLoaderOptions{.batch_size = 2});
}

models::GPT tiny_gpt() {
  torch::manual_seed(1);
  return models::GPT(models::GPTOptions{.vocab_size = 5, .max_sequence_length = 8, .d_model = 8, .heads = 2,
                                        .layers = 1, .mlp_ratio = 2});
}

// Records the batch count at every EVAL_START and the learning rate each batch trains with (at BEFORE_FORWARD).
struct Watcher {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::EVAL_START, composer::Event::BEFORE_FORWARD};
  std::vector<std::int64_t> evaluated_at;
  std::vector<double> learning_rates;
  void apply(composer::Event event, composer::State& state) {
    if (event == composer::Event::EVAL_START)
      evaluated_at.push_back(state.timestamp.batch().count());
    else
      learning_rates.push_back(state.optimizers[0]->param_groups()[0].options().get_lr());
  }
};

}  // namespace

TEST_CASE("tokens_in_batch: the elements of integer token inputs [N, S]; no tokens in images or class vectors") {
  CHECK(composer::tokens_in_batch({torch::zeros({4, 8}, torch::kLong), torch::zeros({4, 8}, torch::kLong)}) == 32);
  CHECK(composer::tokens_in_batch({torch::zeros({4, 8}, torch::kInt), {}}) == 32);
  CHECK(composer::tokens_in_batch({torch::zeros({4, 1, 28, 28}), torch::zeros({4}, torch::kLong)}) == 0);
  CHECK(composer::tokens_in_batch({torch::zeros({4}, torch::kLong), torch::zeros({4}, torch::kLong)}) == 0);
  CHECK(composer::tokens_in_batch({}) == 0);
}

TEST_CASE("the Trainer trains for a duration in tokens, evaluates and saves at token intervals, schedules in tok") {
  const std::string folder = io::join(io::temp_directory(), "composer_token_time_test");
  io::remove_all(folder);
  models::GPT gpt = tiny_gpt();
  composer::Trainer<Watcher> trainer(
      composer::Model(gpt, models::language_model_loss),
      {.train_dataloader = token_loader(),
       .eval_dataloader = token_loader(),
       .max_duration = Time("8e1tok"),  // 80 tokens: 5 batches of 16
       .optimizers = {std::make_shared<torch::optim::SGD>(gpt->parameters(), torch::optim::SGDOptions(0.4))},
       .schedulers = {composer::optim::LinearScheduler{.alpha_i = 1.0, .alpha_f = 0.0, .t_max = Time("64tok")}},
       .eval_interval = Time("32tok"),
       .eval_metrics = composer::metrics::language_model_metrics(),
       .save_folder = folder,
       .save_interval = Time("48tok"),
       .progress_bar = false},
      Watcher{});
  trainer.fit();
  const auto& state = trainer.state();
  CHECK(state.timestamp.batch().count() == 5);
  CHECK(state.timestamp.token().count() == 80);
  CHECK(state.timestamp.token_in_epoch().count() == 80);
  CHECK(state.timestamp.sample().count() == 10);
  // 32 tokens are 2 batches: evaluations after batches 2 and 4, and once more at the end (5 is not a multiple)
  CHECK(trainer.get<Watcher>().evaluated_at == std::vector<std::int64_t>{2, 4, 5});
  // the learning rate falls linearly over 64 tokens (4 batches), then stays at 0
  const std::vector<double> expected_lr{0.4, 0.3, 0.2, 0.1, 0.0};
  REQUIRE(trainer.get<Watcher>().learning_rates.size() == expected_lr.size());
  for (std::size_t i = 0; i < expected_lr.size(); ++i)
    CHECK(trainer.get<Watcher>().learning_rates[i] == doctest::Approx(expected_lr[i]));
  // 48 tokens are 3 batches: a checkpoint after batch 3, and the final one after batch 5
  CHECK(io::exists(io::join(folder, "ep0-ba3-rank0.pt")));
  CHECK(io::exists(io::join(folder, "ep0-ba5-rank0.pt")));
  CHECK_FALSE(io::exists(io::join(folder, "ep0-ba2-rank0.pt")));
  CHECK_FALSE(io::exists(io::join(folder, "ep0-ba4-rank0.pt")));

  // resumed from the batch-3 checkpoint, the clock holds 48 tokens and training stops again at 80
  models::GPT again = tiny_gpt();
  composer::Trainer<Watcher> resumed(
      composer::Model(again, models::language_model_loss),
      {.train_dataloader = token_loader(),
       .max_duration = Time("80tok"),
       .optimizers = {std::make_shared<torch::optim::SGD>(again->parameters(), torch::optim::SGDOptions(0.4))},
       .schedulers = {composer::optim::LinearScheduler{.alpha_i = 1.0, .alpha_f = 0.0, .t_max = Time("64tok")}},
       .eval_interval = Time("0ba"),
       .load_path = io::join(folder, "ep0-ba3-rank0.pt"),
       .progress_bar = false},
      Watcher{});
  CHECK(resumed.state().timestamp.token().count() == 48);
  resumed.fit();
  CHECK(resumed.state().timestamp.token().count() == 80);
  CHECK(resumed.state().timestamp.batch().count() == 5);
  // the schedule continues from 48 of its 64 tokens
  CHECK(resumed.get<Watcher>().learning_rates.size() == 2);
  CHECK(resumed.get<Watcher>().learning_rates.front() == doctest::Approx(0.1));
  CHECK(resumed.get<Watcher>().learning_rates.back() == doctest::Approx(0.0));
  io::remove_all(folder);
}

TEST_CASE("image batches count no tokens, so a duration in tokens is refused before it could run forever") {
  torch::manual_seed(2);
  torch::nn::Linear net(4, 3);
  composer::Trainer<> trainer(
      net, {.train_dataloader = composer::data::TensorLoader(torch::randn({8, 4}), torch::randint(0, 3, {8}),
                                                             composer::data::TensorLoaderOptions{.batch_size = 4}),
            .max_duration = Time("100tok"),
            .optimizers = {std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1))},
            .progress_bar = false});
  CHECK_THROWS_WITH_AS(trainer.fit(), doctest::Contains("counts no tokens"), std::runtime_error);
}
