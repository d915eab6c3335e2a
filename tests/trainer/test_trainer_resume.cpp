// Trainer: autoresume from save_folder, weights-only checkpoints, train_subset_num_batches, and fit(FitOptions)
// with a new loader, a duration and reset_time.
#include <torch/torch.h>

#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

using composer::Event;
using composer::Time;
namespace io = composer::io;
namespace keys = composer::checkpoint::keys;

namespace trainer_resume_test {

// `samples` samples of 4 features and 3 classes, the same for every call, in batches of `batch`.
composer::data::TensorLoader make_data(std::int64_t samples, std::int64_t batch, bool shuffle = true) {
  torch::manual_seed(77);
  auto x = torch::randn({samples, 4});
  auto y = torch::randint(0, 3, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, shuffle, false, 5});
}

torch::nn::Linear make_net(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Linear(4, 3);
}

// A model with buffers too (BatchNorm's running statistics and batch count).
torch::nn::Sequential make_bn_net(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(4, 6), torch::nn::BatchNorm1d(6), torch::nn::Linear(6, 3));
}

std::shared_ptr<torch::optim::SGD> momentum_sgd(torch::nn::Module& module) {
  return std::make_shared<torch::optim::SGD>(module.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_trainer_resume_test_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

// 4 epochs of 3 shuffled batches with momentum, saving every epoch into `folder` (none when empty).
composer::TrainerOptions four_epochs(torch::nn::Module& net, const std::string& folder, bool autoresume) {
  return {.train_dataloader = make_data(12, 4),
          .max_duration = Time("4ep"),
          .optimizers = {momentum_sgd(net)},
          .save_folder = folder,
          .autoresume = autoresume,
          .seed = 11,
          .progress_bar = false};
}

// Every parameter and buffer, detached copies, in the module's order.
std::vector<torch::Tensor> tensors_of(const torch::nn::Module& module) {
  std::vector<torch::Tensor> tensors;
  for (const auto& p : module.parameters()) tensors.push_back(p.detach().clone());
  for (const auto& b : module.buffers()) tensors.push_back(b.detach().clone());
  return tensors;
}

bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

// The message of the std::invalid_argument `options.validate()` throws, or "accepted".
std::string validation_message(const composer::TrainerOptions& options) {
  try {
    options.validate();
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "accepted";
}

// Records, per training batch, the epoch it belongs to, its inputs and the learning rate it is trained with (the
// schedule sets it after BATCH_START).
struct BatchLog {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BEFORE_TRAIN_BATCH, Event::EPOCH_END};
  std::vector<std::int64_t> epochs;
  std::vector<torch::Tensor> inputs;
  std::vector<double> learning_rates;
  int epoch_ends = 0;
  void apply(Event e, composer::State& state) {
    if (e == Event::EPOCH_END) {
      ++epoch_ends;
      return;
    }
    epochs.push_back(state.timestamp.epoch().count());
    inputs.push_back(state.batch.inputs.clone());
    learning_rates.push_back(state.optimizers.front()->param_groups().front().options().get_lr());
  }
};

}  // namespace trainer_resume_test

using namespace trainer_resume_test;

TEST_CASE("autoresume continues a killed run from save_folder's latest checkpoint, bit-identical") {
  const std::string dir = fresh_dir("autoresume");
  auto reference_net = make_net(1);
  composer::Trainer<> reference(reference_net, four_epochs(*reference_net, "", false));
  reference.fit();
  REQUIRE(reference.state().timestamp.epoch().count() == 4);

  {  // the first run: autoresume finds nothing, starts fresh, and is "killed" after 2 of its 4 epochs
    auto net = make_net(1);
    const auto initial = tensors_of(*net);
    composer::Trainer<> killed(net, four_epochs(*net, dir, true));
    CHECK(killed.state().timestamp.batch().count() == 0);
    CHECK(all_equal(tensors_of(*net), initial));
    killed.fit(Time("2ep"));
    CHECK(killed.state().timestamp.epoch().count() == 2);
  }
  REQUIRE(io::read_symlink(dir + "/latest-rank0.pt") == "ep2-ba6-rank0.pt");

  // the same command again, with other initial weights and a load_path that does not exist: autoresume takes
  // precedence over load_path, and the checkpoint overwrites the weights
  auto net = make_net(2);
  auto options = four_epochs(*net, dir, true);
  options.load_path = dir + "/no-such-checkpoint.pt";
  composer::Trainer<> resumed(net, options);
  CHECK(resumed.state().timestamp.epoch().count() == 2);
  CHECK(resumed.state().timestamp.batch().count() == 6);
  resumed.fit();
  CHECK(resumed.state().timestamp == reference.state().timestamp);
  CHECK(all_equal(tensors_of(*net), tensors_of(*reference_net)));
  CHECK(io::read_symlink(dir + "/latest-rank0.pt") == "ep4-ba12-rank0.pt");
  // (the run really depends on the checkpoint: two epochs from the fresh weights end elsewhere)
  auto fresh = make_net(2);
  composer::Trainer<> two_epochs(fresh, four_epochs(*fresh, "", false));
  two_epochs.fit(Time("2ep"));
  CHECK_FALSE(all_equal(tensors_of(*fresh), tensors_of(*net)));
}

TEST_CASE("autoresume with nothing in save_folder starts fresh, or from load_path when set") {
  const std::string dir = fresh_dir("autoresume_empty");
  const std::string empty = dir + "/empty";
  io::create_directories(empty);
  {
    auto net = make_net(3);
    const auto initial = tensors_of(*net);
    composer::Trainer<> fresh(net, four_epochs(*net, empty, true));
    CHECK(fresh.state().timestamp.batch().count() == 0);
    CHECK(all_equal(tensors_of(*net), initial));
  }  // its lock on the folder goes with it
  // a folder that does not exist yet is empty too
  auto net2 = make_net(3);
  composer::Trainer<> fresh2(net2, four_epochs(*net2, dir + "/not-yet", true));
  CHECK(fresh2.state().timestamp.batch().count() == 0);

  // with load_path set, a run with nothing to autoresume loads load_path, as Composer does
  auto trained_net = make_net(4);
  composer::Trainer<> trained(trained_net, four_epochs(*trained_net, "", false));
  trained.fit(Time("2ba"));
  trained.save_checkpoint(dir + "/given.pt");
  auto net3 = make_net(5);
  auto options = four_epochs(*net3, empty, true);
  options.load_path = dir + "/given.pt";
  composer::Trainer<> from_load_path(net3, options);
  CHECK(from_load_path.state().timestamp.batch().count() == 2);
  CHECK(all_equal(tensors_of(*net3), tensors_of(*trained_net)));
}

TEST_CASE("bad resume, weights-only and subset options are refused at construction, naming the option") {
  auto net = make_net(0);
  CHECK(validation_message({.autoresume = true}) ==
        "composer: autoresume needs save_folder (it resumes from the latest checkpoint there)");
  CHECK(validation_message({.save_folder = "somewhere", .autoresume = true}) == "accepted");
  CHECK(validation_message({.load_weights_only = true}) ==
        "composer: load_weights_only needs load_path (or autoresume) to load from");
  CHECK(validation_message({.load_path = "a.pt", .load_weights_only = true}) == "accepted");
  CHECK(validation_message({.save_folder = "somewhere", .load_weights_only = true, .autoresume = true}) == "accepted");
  CHECK(validation_message({.train_subset_num_batches = -2}) ==
        "composer: train_subset_num_batches must be positive or -1 (all batches), got -2");
  CHECK(validation_message({.train_subset_num_batches = 0}) ==
        "composer: train_subset_num_batches must be positive or -1 (all batches), got 0");
  CHECK(validation_message({.train_subset_num_batches = -1}) == "accepted");
  CHECK(validation_message({.train_subset_num_batches = 5}) == "accepted");
  // the Trainer refuses them before anything is loaded or trained
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.autoresume = true, .progress_bar = false}),
                       doctest::Contains("autoresume needs save_folder"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.load_weights_only = true, .progress_bar = false}),
                       doctest::Contains("load_weights_only needs load_path"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.train_subset_num_batches = -3, .progress_bar = false}),
                       doctest::Contains("train_subset_num_batches must be positive or -1"), std::invalid_argument);
}

TEST_CASE("weights-only checkpoints hold the model only and load into a fresh model with load_weights_only") {
  const std::string dir = fresh_dir("weights_only");
  auto net = make_bn_net(1);
  composer::Trainer<> trainer(net, {.train_dataloader = make_data(12, 4),
                                    .max_duration = Time("2ba"),
                                    .optimizers = {momentum_sgd(*net)},
                                    .save_folder = dir + "/saved",
                                    .save_interval = Time("1ba"),
                                    .save_weights_only = true,
                                    .seed = 3,
                                    .progress_bar = false});
  trainer.fit();
  const auto trained = tensors_of(*net);
  REQUIRE(trainer.saved_checkpoints().size() == 2);
  const std::string weights = trainer.saved_checkpoints().back();

  // what the saver wrote: the format, the weights-only mark and the model, nothing of the training state
  {
    torch::serialize::InputArchive archive;
    archive.load_from(weights);
    // (a fresh tensor for each entry: reading into a defined tensor reuses its storage)
    auto has = [](torch::serialize::InputArchive& in, const std::string& key) {
      torch::Tensor entry;
      return in.try_read(key, entry);
    };
    CHECK(has(archive, keys::weights_only));
    CHECK(has(archive, keys::format));
    CHECK(has(archive, std::string(keys::model) + "1.running_mean"));
    for (const char* absent : {keys::optimizer_count, keys::base_learning_rates, keys::cpu_rng, keys::rank_zero_seed})
      CHECK_FALSE_MESSAGE(has(archive, absent), "unexpected entry ", absent);
    CHECK_FALSE(has(archive, std::string(keys::timestamp) + "/counters"));
    // a full checkpoint has no weights-only mark
    trainer.save_checkpoint(dir + "/full.pt");
    torch::serialize::InputArchive full;
    full.load_from(dir + "/full.pt");
    CHECK_FALSE(has(full, keys::weights_only));
    CHECK(has(full, keys::optimizer_count));
  }

  // into a fresh model: parameters and buffers equal, the clock at zero, the optimizer without state
  for (const std::string& path : {weights, dir + "/full.pt"}) {
    CAPTURE(path);
    auto fresh = make_bn_net(2);
    REQUIRE_FALSE(all_equal(tensors_of(*fresh), trained));
    auto optimizer = momentum_sgd(*fresh);
    composer::Trainer<> loaded(fresh, {.train_dataloader = make_data(12, 4),
                                       .max_duration = Time("2ba"),
                                       .optimizers = {optimizer},
                                       .load_path = path,
                                       .load_weights_only = true,
                                       .seed = 4,
                                       .progress_bar = false});
    CHECK(all_equal(tensors_of(*fresh), trained));
    CHECK(loaded.state().timestamp.batch().count() == 0);
    CHECK(loaded.state().timestamp == composer::Timestamp());
    CHECK(loaded.state().rank_zero_seed == 4);
    CHECK(optimizer->state().empty());
    loaded.fit();  // and it trains from there, its full two batches
    CHECK(loaded.state().timestamp.batch().count() == 2);
  }

  // a weights-only checkpoint loaded as a full one is a clear error, and changes nothing
  auto other = make_bn_net(5);
  const auto other_before = tensors_of(*other);
  CHECK_THROWS_WITH_AS(composer::Trainer<>(other, {.optimizers = {momentum_sgd(*other)}, .load_path = weights,
                                                    .progress_bar = false}),
                       doctest::Contains("is weights-only"), composer::CheckpointError);
  composer::Trainer<> other_trainer(other, {.optimizers = {momentum_sgd(*other)}, .progress_bar = false});
  CHECK_THROWS_WITH_AS(other_trainer.load_checkpoint(weights), doctest::Contains("load_weights_only"),
                       composer::CheckpointError);
  CHECK(all_equal(tensors_of(*other), other_before));
  CHECK(other_trainer.state().timestamp.batch().count() == 0);
}

TEST_CASE("load_weights refuses corrupt, foreign and misfitting checkpoints before changing the model") {
  const std::string dir = fresh_dir("weights_errors");
  auto net = make_net(1);
  composer::Trainer<> trainer(net, {.train_dataloader = make_data(8, 4), .max_duration = Time("2ba"),
                                    .optimizers = {momentum_sgd(*net)}, .seed = 1, .progress_bar = false});
  trainer.fit();
  const std::string good = dir + "/good.pt";
  trainer.save_checkpoint(good, /*weights_only=*/true);
  const auto trained = tensors_of(*net);

  auto target = make_net(2);
  const auto before = tensors_of(*target);
  composer::Trainer<> loader(target, {.optimizers = {momentum_sgd(*target)}, .progress_bar = false});
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes(io::file_size(good) / 2, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(dir + "/truncated.pt", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::ofstream(dir + "/garbage.pt") << "not a checkpoint";
  CHECK_THROWS_WITH_AS(loader.load_weights(dir + "/truncated.pt"), doctest::Contains("corrupt or truncated"),
                       composer::CheckpointError);
  CHECK_THROWS_WITH_AS(loader.load_weights(dir + "/garbage.pt"), doctest::Contains("garbage.pt"),
                       composer::CheckpointError);
  CHECK_THROWS_WITH_AS(loader.load_weights(dir + "/missing.pt"), doctest::Contains("does not exist"),
                       composer::CheckpointError);
  // a LibTorch archive that is not a composer-cpp checkpoint
  {
    torch::serialize::OutputArchive foreign;
    foreign.write("weight", torch::zeros({3, 4}));
    foreign.save_to(dir + "/foreign.pt");
  }
  CHECK_THROWS_WITH_AS(loader.load_weights(dir + "/foreign.pt"), doctest::Contains("not a composer-cpp checkpoint"),
                       composer::CheckpointError);
  // another model's weights: the shape is named, and the constructor's load fails the same way
  torch::nn::Linear wide(4, 5);
  composer::Trainer<> wide_trainer(wide, {.optimizers = {momentum_sgd(*wide)}, .progress_bar = false});
  const auto wide_before = tensors_of(*wide);
  CHECK_THROWS_WITH_AS(wide_trainer.load_weights(good), doctest::Contains("shape"), composer::CheckpointError);
  CHECK(all_equal(tensors_of(*wide), wide_before));
  CHECK(all_equal(tensors_of(*target), before));
  loader.load_weights(good);
  CHECK(all_equal(tensors_of(*target), trained));
}

TEST_CASE("load_strict_model_weights: a missing or unexpected model tensor is an error naming it, or skipped") {
  const std::string dir = fresh_dir("strict");
  auto with_bias = make_net(1);
  composer::Trainer<>(with_bias, {.progress_bar = false}).save_checkpoint(dir + "/with_bias.pt", true);
  torch::manual_seed(2);
  torch::nn::Linear no_bias(torch::nn::LinearOptions(4, 3).bias(false));
  composer::Trainer<>(no_bias, {.progress_bar = false}).save_checkpoint(dir + "/no_bias.pt", true);

  SUBCASE("strict (the default)") {
    torch::manual_seed(3);
    torch::nn::Linear target(torch::nn::LinearOptions(4, 3).bias(false));
    const auto before = target->weight.clone();
    composer::Trainer<> trainer(target, {.progress_bar = false});
    CHECK_THROWS_WITH_AS(trainer.load_weights(dir + "/with_bias.pt"),
                         doctest::Contains("holds model tensor 'bias', which the model does not have"),
                         composer::CheckpointError);
    CHECK(torch::equal(target->weight, before));
    auto biased = make_net(4);
    composer::Trainer<> biased_trainer(biased, {.progress_bar = false});
    CHECK_THROWS_WITH_AS(biased_trainer.load_weights(dir + "/no_bias.pt"),
                         doctest::Contains("has no entry for model tensor 'bias'"), composer::CheckpointError);
  }
  SUBCASE("not strict: the tensors both have are loaded, the others skipped") {
    torch::manual_seed(3);
    torch::nn::Linear target(torch::nn::LinearOptions(4, 3).bias(false));
    composer::Trainer<>(target, {.load_path = dir + "/with_bias.pt", .load_weights_only = true,
                                 .load_strict_model_weights = false, .progress_bar = false});
    CHECK(torch::equal(target->weight, with_bias->weight));
    auto biased = make_net(4);
    const auto bias_before = biased->bias.clone();
    composer::Trainer<>(biased, {.load_path = dir + "/no_bias.pt", .load_weights_only = true,
                                 .load_strict_model_weights = false, .progress_bar = false});
    CHECK(torch::equal(biased->weight, no_bias->weight));
    CHECK(torch::equal(biased->bias, bias_before));
  }
}

TEST_CASE("train_subset_num_batches ends every epoch after that many batches") {
  auto net = make_net(1);
  // 10 batches per epoch, in order
  composer::Trainer<BatchLog> trainer(net, {.train_dataloader = make_data(40, 4, /*shuffle=*/false),
                                            .max_duration = Time("2ep"),
                                            .optimizers = {momentum_sgd(*net)},
                                            .train_subset_num_batches = 3,
                                            .seed = 1,
                                            .progress_bar = false});
  trainer.fit();
  const auto& log = trainer.get<BatchLog>();
  CHECK(trainer.state().timestamp.epoch().count() == 2);
  CHECK(trainer.state().timestamp.batch().count() == 6);
  CHECK(trainer.state().timestamp.sample().count() == 24);
  CHECK(trainer.state().dataloader_len == std::optional<std::int64_t>(3));
  CHECK(log.epoch_ends == 2);
  CHECK(log.epochs == std::vector<std::int64_t>{0, 0, 0, 1, 1, 1});
  // each epoch's first three batches, in order (the loader does not shuffle)
  torch::manual_seed(77);
  const auto x = torch::randn({40, 4});
  REQUIRE(log.inputs.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    const std::int64_t first = static_cast<std::int64_t>(i % 3) * 4;
    CHECK(torch::equal(log.inputs[i], x.slice(0, first, first + 4)));
  }

  // in batches: 7 batches are epochs of 3, 3 and 1
  auto net2 = make_net(1);
  composer::Trainer<BatchLog> by_batch(net2, {.train_dataloader = make_data(40, 4, false), .max_duration = Time("7ba"),
                                              .optimizers = {momentum_sgd(*net2)}, .train_subset_num_batches = 3,
                                              .seed = 1, .progress_bar = false});
  by_batch.fit();
  CHECK(by_batch.state().timestamp.epoch().count() == 2);
  CHECK(by_batch.state().timestamp.batch_in_epoch().count() == 1);

  // a subset larger than the loader uses every batch
  auto net3 = make_net(1);
  composer::Trainer<> whole(net3, {.train_dataloader = make_data(40, 4, false), .max_duration = Time("1ep"),
                                   .optimizers = {momentum_sgd(*net3)}, .train_subset_num_batches = 25, .seed = 1,
                                   .progress_bar = false});
  whole.fit();
  CHECK(whole.state().timestamp.batch().count() == 10);
  CHECK(whole.state().dataloader_len == std::optional<std::int64_t>(10));
}

TEST_CASE("fit(FitOptions) takes a new train loader, adds a duration, resets the clock") {
  SUBCASE("a new loader replaces the training data from that call on") {
    auto net = make_net(1);
    composer::Trainer<BatchLog> trainer(net, {.train_dataloader = make_data(12, 4), .max_duration = Time("1ep"),
                                              .optimizers = {momentum_sgd(*net)}, .seed = 1, .progress_bar = false});
    trainer.fit();
    CHECK(trainer.state().timestamp.batch().count() == 3);
    trainer.fit({.train_dataloader = make_data(8, 2), .duration = Time("1ep")});
    CHECK(trainer.state().timestamp.epoch().count() == 2);
    CHECK(trainer.state().timestamp.batch().count() == 3 + 4);
    CHECK(trainer.state().timestamp.sample().count() == 12 + 8);
    CHECK(trainer.state().dataloader_len == std::optional<std::int64_t>(4));
    const auto& log = trainer.get<BatchLog>();
    REQUIRE(log.inputs.size() == 7);
    CHECK(log.inputs[2].size(0) == 4);
    CHECK(log.inputs[3].size(0) == 2);
    // and a subset set by fit stays for later calls
    trainer.fit({.duration = Time("1ep"), .train_subset_num_batches = 1});
    CHECK(trainer.state().timestamp.batch().count() == 8);
    trainer.fit({.duration = Time("1ep")});
    CHECK(trainer.state().timestamp.batch().count() == 9);
    // a trainer built without training data gets it from fit, as in Composer
    auto net2 = make_net(1);
    composer::Trainer<> later(net2, {.optimizers = {momentum_sgd(*net2)}, .seed = 1, .progress_bar = false});
    CHECK_THROWS_WITH_AS(later.fit(Time("1ep")), doctest::Contains("needs a train_dataloader"), std::invalid_argument);
    later.fit({.train_dataloader = make_data(12, 4), .duration = Time("1ep")});
    CHECK(later.state().timestamp.batch().count() == 3);
  }
  SUBCASE("duration is added to the current time in its own unit") {
    auto net = make_net(1);
    composer::Trainer<> trainer(net, {.train_dataloader = make_data(12, 4), .max_duration = Time("2ba"),
                                      .optimizers = {momentum_sgd(*net)}, .seed = 1, .progress_bar = false});
    trainer.fit();
    // 0 epochs done + 1ep: to the end of the first epoch, one more batch
    trainer.fit({.duration = Time("1ep")});
    CHECK(trainer.state().timestamp.batch().count() == 3);
    CHECK(*trainer.state().max_duration() == Time("1ep"));
    trainer.fit({.duration = Time("2ba")});
    CHECK(trainer.state().timestamp.batch().count() == 5);
    CHECK_THROWS_WITH_AS(trainer.fit({.duration = Time("0ba")}), doctest::Contains("positive duration"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(trainer.fit({.train_subset_num_batches = 0}),
                         doctest::Contains("fit(train_subset_num_batches) must be positive or -1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(trainer.fit(), doctest::Contains("already reached max_duration"), std::invalid_argument);
    CHECK(trainer.state().timestamp.batch().count() == 5);
  }
  SUBCASE("reset_time starts the clock and the schedule again, keeping the weights and the optimizer") {
    auto net = make_net(1);
    auto optimizer = momentum_sgd(*net);
    const composer::Scheduler decay = [](const composer::State& state, double) {
      return 1.0 / static_cast<double>(1 + state.timestamp.batch().count());
    };
    composer::Trainer<BatchLog> trainer(net, {.train_dataloader = make_data(12, 4), .max_duration = Time("2ba"),
                                              .optimizers = {optimizer}, .schedulers = {decay}, .seed = 1,
                                              .progress_bar = false});
    trainer.fit();
    const auto after_first = tensors_of(*net);
    trainer.fit({.reset_time = true});  // trains for max_duration again, from zero
    CHECK(trainer.state().timestamp.batch().count() == 2);
    CHECK(*trainer.state().max_duration() == Time("2ba"));
    const auto& log = trainer.get<BatchLog>();
    CHECK(log.learning_rates == std::vector<double>{0.1, 0.05, 0.1, 0.05});
    CHECK(log.epochs == std::vector<std::int64_t>{0, 0, 0, 0});
    CHECK_FALSE(all_equal(tensors_of(*net), after_first));  // the weights were not reset
    CHECK_FALSE(optimizer->state().empty());
    // with a duration, from zero for that long
    trainer.fit({.duration = Time("3ba"), .reset_time = true});
    CHECK(trainer.state().timestamp.batch().count() == 3);
    CHECK(*trainer.state().max_duration() == Time("3ba"));
  }
}
