// What a checkpoint guarantees: every record's CRC-32 is verified on loading (a flipped bit in a tensor or in the
// stored counters is refused naming the record, before anything changes); the counters a Trainer-written name
// carries must match those it holds; a full disk is a clean error; a finished run resumed finishes what is missing;
// changed settings are refused; one run per folder; keep 0 refused; older checkpoints rotate after a resume; a
// missing `latest` falls back to the newest whole checkpoint; stale temporary files are removed.
#include <torch/torch.h>

#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>
#include <composer/io/zip_integrity.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>

#include <unistd.h>
#include <string>
#include <vector>

using composer::Time;
namespace io = composer::io;

namespace checkpoint_integrity_test {

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_checkpoint_integrity_test_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The one offset at which `needle` occurs in `haystack`; fails the test unless it occurs exactly once.
std::size_t find_once(const std::vector<char>& haystack, const void* needle, std::size_t size) {
  const char* begin = static_cast<const char*>(needle);
  const auto first = std::search(haystack.begin(), haystack.end(), begin, begin + size);
  REQUIRE(first != haystack.end());
  REQUIRE(std::search(first + 1, haystack.end(), begin, begin + size) == haystack.end());
  return static_cast<std::size_t>(first - haystack.begin());
}

torch::nn::Linear make_net() {
  torch::manual_seed(3);
  return torch::nn::Linear(4, 3);
}

composer::data::TensorLoader make_data() {
  torch::manual_seed(4);
  return composer::data::TensorLoader(torch::randn({8, 4}), torch::randint(0, 3, {8}),
                                      composer::data::TensorLoaderOptions{4, false, false, 0});
}

// Options for 2 batches of `net`, saving every batch into `folder`.
composer::TrainerOptions two_saved_batches(torch::nn::Linear& net, const std::string& folder) {
  return {.train_dataloader = make_data(),
          .max_duration = Time("2ba"),
          .optimizers = {std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1))},
          .save_folder = folder,
          .save_interval = Time("1ba"),
          .seed = 1,
          .progress_bar = false};
}

// Trains 2 batches saving every batch into `folder`; returns the trainer's model weight after the run.
at::Tensor train_and_save(const std::string& folder) {
  auto net = make_net();
  composer::Trainer<> trainer(net, two_saved_batches(net, folder));
  trainer.fit();
  return net->weight.detach().clone();
}

// A trainer like train_and_save's, not trained, with a copy of its initial weight.
struct Fresh {
  torch::nn::Linear net = make_net();
  std::shared_ptr<torch::optim::SGD> sgd =
      std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::Trainer<> trainer{net, {.train_dataloader = make_data(),
                                    .max_duration = Time("2ba"),
                                    .optimizers = {sgd},
                                    .seed = 1,
                                    .progress_bar = false}};
  at::Tensor initial = net->weight.detach().clone();
};

}  // namespace checkpoint_integrity_test

using namespace checkpoint_integrity_test;

TEST_CASE("crc32 gives the standard check value, and in pieces as at once") {
  const char digits[] = "123456789";
  CHECK(io::crc32(0, digits, 9) == 0xCBF43926U);
  CHECK(io::crc32(io::crc32(0, digits, 4), digits + 4, 5) == 0xCBF43926U);
  CHECK(io::crc32(0, digits, 0) == 0U);
}

TEST_CASE("a checkpoint the Trainer wrote passes the record check and loads") {
  const std::string folder = fresh_dir("clean");
  const at::Tensor trained = train_and_save(folder);
  const std::string path = io::join(folder, "ep0-ba2-rank0.pt");
  CHECK(io::verify_zip_records(path) > 5);
  Fresh fresh;
  fresh.trainer.load_checkpoint(path);
  CHECK(torch::equal(fresh.net->weight, trained));
  CHECK(fresh.trainer.state().timestamp.batch().count() == 2);
}

TEST_CASE("one flipped bit in a model tensor's bytes is refused, naming the record, and nothing changes") {
  const std::string folder = fresh_dir("tensor_flip");
  const at::Tensor trained = train_and_save(folder);
  const std::string path = io::join(folder, "ep0-ba2-rank0.pt");
  std::vector<char> bytes = read_bytes(path);
  // The weight's 12 floats, as stored (contiguous, little-endian).
  const at::Tensor weight = trained.contiguous();
  const std::size_t at = find_once(bytes, weight.data_ptr<float>(), 12 * sizeof(float));
  bytes[at + 17] = static_cast<char>(bytes[at + 17] ^ 0x04);
  write_bytes(path, bytes);
  CHECK_THROWS_WITH_AS(io::verify_zip_records(path), doctest::Contains("does not match its stored CRC-32"),
                       io::ZipIntegrityError);
  Fresh fresh;
  CHECK_THROWS_WITH_AS(fresh.trainer.load_checkpoint(path),
                       doctest::Contains("is corrupt or truncated, nothing was loaded"), composer::CheckpointError);
  try {
    fresh.trainer.load_checkpoint(path);
  } catch (const composer::CheckpointError& error) {
    CHECK(std::string(error.what()).find("record 'archive/data/") != std::string::npos);
  }
  CHECK(torch::equal(fresh.net->weight, fresh.initial));
  CHECK(fresh.trainer.state().timestamp.batch().count() == 0);
  // The Trainer's constructor refuses it the same way.
  auto net = make_net();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  CHECK_THROWS_AS(composer::Trainer<>(net, {.train_dataloader = make_data(), .optimizers = {sgd}, .load_path = path,
                                            .progress_bar = false}),
                  composer::CheckpointError);
  // The weights-only loader checks too.
  CHECK_THROWS_WITH_AS(fresh.trainer.load_weights(path), doctest::Contains("is corrupt"), composer::CheckpointError);
}

TEST_CASE("one flipped bit in the stored batch counter is refused before anything changes") {
  const std::string folder = fresh_dir("counter_flip");
  train_and_save(folder);
  const std::string path = io::join(folder, "ep0-ba2-rank0.pt");
  // The clock the checkpoint holds, as its ten counters were written.
  composer::Timestamp clock;
  clock = clock.to_next_batch(4).to_next_batch(4);
  const auto counters = clock.counters();
  const std::vector<std::int64_t> stored(counters.begin(), counters.end());
  std::vector<char> bytes = read_bytes(path);
  const std::size_t at = find_once(bytes, stored.data(), stored.size() * sizeof(std::int64_t));
  // The batch counter (2) becomes 0 in one of the records' bytes.
  const auto batch_index = static_cast<std::size_t>(
      std::find(stored.begin(), stored.end(), 2) - stored.begin());
  REQUIRE(batch_index < stored.size());
  bytes[at + batch_index * sizeof(std::int64_t)] ^= 0x02;
  write_bytes(path, bytes);
  Fresh fresh;
  CHECK_THROWS_WITH_AS(fresh.trainer.load_checkpoint(path), doctest::Contains("does not match its stored CRC-32"),
                       composer::CheckpointError);
  CHECK(fresh.trainer.state().timestamp.batch().count() == 0);
  CHECK(torch::equal(fresh.net->weight, fresh.initial));
}

TEST_CASE("a Trainer-written checkpoint whose name carries other counters than it holds is refused") {
  const std::string folder = fresh_dir("renamed");
  train_and_save(folder);
  io::rename(io::join(folder, "ep0-ba2-rank0.pt"), io::join(folder, "ep16-ba2-rank0.pt"));
  Fresh fresh;
  CHECK_THROWS_WITH_AS(fresh.trainer.load_checkpoint(io::join(folder, "ep16-ba2-rank0.pt")),
                       doctest::Contains("is named for epoch 16, batch 2 but holds epoch 0, batch 2"),
                       composer::CheckpointError);
  CHECK(torch::equal(fresh.net->weight, fresh.initial));
  // Through the latest link, the name checked is the link's target; a name of another form is not checked.
  io::rename(io::join(folder, "ep16-ba2-rank0.pt"), io::join(folder, "ep0-ba2-rank0.pt"));
  CHECK_NOTHROW(fresh.trainer.load_checkpoint(io::join(folder, "latest-rank0.pt")));
  io::rename(io::join(folder, "ep0-ba1-rank0.pt"), io::join(folder, "first.pt"));
  CHECK_NOTHROW(fresh.trainer.load_checkpoint(io::join(folder, "first.pt")));
  CHECK(fresh.trainer.state().timestamp.batch().count() == 1);
}

TEST_CASE("a truncated archive and a file that is no archive are refused by the record check") {
  const std::string folder = fresh_dir("truncated");
  train_and_save(folder);
  const std::string path = io::join(folder, "ep0-ba2-rank0.pt");
  std::vector<char> bytes = read_bytes(path);
  bytes.resize(bytes.size() / 2);
  write_bytes(path, bytes);
  CHECK_THROWS_AS(io::verify_zip_records(path), io::ZipIntegrityError);
  write_bytes(path, std::vector<char>(100, 'x'));
  CHECK_THROWS_WITH_AS(io::verify_zip_records(path), doctest::Contains("not a zip archive"), io::ZipIntegrityError);
  Fresh fresh;
  CHECK_THROWS_WITH_AS(fresh.trainer.load_checkpoint(path), doctest::Contains("is corrupt"), composer::CheckpointError);
}

TEST_CASE("a full disk while writing a checkpoint is a CheckpointError; the temporary file goes, the rest stays") {
  if (!io::exists("/dev/full")) {
    MESSAGE("no /dev/full on this system: the injected write failure cannot be made");
    return;
  }
  const std::string folder = fresh_dir("disk_full");
  const std::string metrics = io::join(folder, "metrics.csv");
  const std::string tmp = io::join(folder, "ep0-ba2-rank0.pt.tmp");
  auto net = make_net();
  auto options = two_saved_batches(net, folder);
  options.metrics_file = metrics;
  composer::Trainer<> trainer(net, std::move(options));
  // The second checkpoint's temporary file is a link to /dev/full, where every write fails with ENOSPC (made after
  // the Trainer, which removes stale temporary files when it starts).
  io::create_symlink("/dev/full", tmp);
  CHECK_THROWS_WITH_AS(trainer.fit(), doctest::Contains("No space left on device"), composer::CheckpointError);
  CHECK(io::file_type(tmp, /*follow_links=*/false) == io::FileType::not_found);
  CHECK_FALSE(io::exists(io::join(folder, "ep0-ba2-rank0.pt")));
  // The first checkpoint and the latest link to it are intact, and load.
  CHECK(io::read_symlink(io::join(folder, "latest-rank0.pt")) == "ep0-ba1-rank0.pt");
  CHECK(io::verify_zip_records(io::join(folder, "ep0-ba1-rank0.pt")) > 5);
  Fresh fresh;
  fresh.trainer.load_checkpoint(io::join(folder, "latest-rank0.pt"));
  CHECK(fresh.trainer.state().timestamp.batch().count() == 1);
  // The metrics file holds both batches' losses.
  trainer.close();
  const std::vector<char> rows = read_bytes(metrics);
  const std::string text(rows.begin(), rows.end());
  CHECK(text.find(",0,1,4,loss/train/total,") != std::string::npos);
  CHECK(text.find(",0,2,8,loss/train/total,") != std::string::npos);
}

TEST_CASE("keeping no checkpoint is refused: it would delete them all and leave latest dangling") {
  auto net = make_net();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.train_dataloader = make_data(), .optimizers = {sgd},
                                                 .save_folder = fresh_dir("keep0"), .save_num_checkpoints_to_keep = 0}),
                       doctest::Contains("save_num_checkpoints_to_keep must be positive or -1 (keep all), got 0"),
                       std::invalid_argument);
  CHECK_THROWS_AS(composer::Trainer<>(net, {.train_dataloader = make_data(), .optimizers = {sgd},
                                            .save_num_checkpoints_to_keep = -3}),
                  std::invalid_argument);
}

namespace checkpoint_integrity_test {

// Counts the events around evaluations and fit.
struct FitRecorder {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::FIT_START, composer::Event::FIT_END,
                                             composer::Event::EVAL_START, composer::Event::BATCH_START};
  std::map<std::string, int> counts;
  void apply(composer::Event event, composer::State&) { ++counts[std::string(composer::to_string(event))]; }
};

composer::TrainerOptions options_for(torch::nn::Linear& net, const std::string& folder, const char* duration,
                                     double lr = 0.1) {
  return {.train_dataloader = make_data(),
          .eval_dataloader = make_data(),
          .max_duration = Time(duration),
          .optimizers = {std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(lr))},
          .eval_interval = Time("3ba"),
          .save_folder = folder,
          .save_interval = Time("1ba"),
          .seed = 1,
          .progress_bar = false};
}

std::vector<std::string> names_in(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& name : io::list_directory(folder))
    if (name.ends_with(".pt") && !name.starts_with("latest")) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace checkpoint_integrity_test

TEST_CASE("a finished run resumed finishes what is missing: the last evaluation, no training, no error") {
  const std::string folder = fresh_dir("finished");
  {
    // 4 batches (2 epochs of 2), a checkpoint every batch, evaluation every 3 batches: the evaluation at the end
    // (batch 4) comes after the last checkpoint was saved.
    auto net = make_net();
    composer::Trainer<FitRecorder> trainer(net, options_for(net, folder, "4ba"));
    trainer.fit();
    CHECK(trainer.get<FitRecorder>().counts.at("eval_start") == 2);  // at batch 3, and at the end
  }
  // The run is killed during that last evaluation: resuming from the last checkpoint evaluates, trains nothing.
  auto net = make_net();
  auto options = options_for(net, folder, "4ba");
  options.load_path = io::join(folder, "latest-rank0.pt");
  composer::Trainer<FitRecorder> resumed(net, std::move(options));
  CHECK_NOTHROW(resumed.fit());
  const auto& counts = resumed.get<FitRecorder>().counts;
  CHECK(counts.at("fit_start") == 1);
  CHECK(counts.at("fit_end") == 1);
  CHECK(counts.at("eval_start") == 1);
  CHECK_FALSE(counts.contains("batch_start"));
  CHECK(resumed.state().eval_metric_values.contains("eval"));
  // Batch 4 was saved already, before its epoch ended: no checkpoint is added.
  CHECK(names_in(folder) ==
        std::vector<std::string>{"ep0-ba1-rank0.pt", "ep0-ba2-rank0.pt", "ep1-ba3-rank0.pt", "ep1-ba4-rank0.pt"});
  CHECK(resumed.state().timestamp.batch().count() == 4);
  // Once finished, another fit() without a new duration is an error again, as for any finished run.
  CHECK_THROWS_WITH_AS(resumed.fit(), doctest::Contains("already reached max_duration"), std::invalid_argument);
}

TEST_CASE("resuming with another learning rate, seed or batch size is refused naming it, unless allowed") {
  const std::string folder = fresh_dir("settings");
  {
    auto net = make_net();
    composer::Trainer<> trainer(net, options_for(net, folder, "2ba"));
    trainer.fit();
  }
  const std::string latest = io::join(folder, "latest-rank0.pt");
  const std::string other_folder = fresh_dir("settings_resumed");
  const auto resume = [&](double lr, std::uint64_t seed, std::int64_t batch, bool allow) {
    auto net = make_net();
    auto options = options_for(net, other_folder, "3ba", lr);
    options.load_path = latest;
    options.seed = seed;
    options.load_allow_changed_settings = allow;
    torch::manual_seed(4);
    options.train_dataloader = composer::data::TensorLoader(torch::randn({8, 4}), torch::randint(0, 3, {8}),
                                                            composer::data::TensorLoaderOptions{batch, false, false, 0});
    return std::make_unique<composer::Trainer<>>(net, std::move(options));
  };
  CHECK_THROWS_WITH_AS(resume(0.05, 1, 4, false),
                       doctest::Contains("was trained with learning rate 0.100000 for parameter group 0, but this "
                                         "trainer's optimizer has 0.050000"),
                       composer::CheckpointError);
  CHECK_THROWS_WITH_AS(resume(0.1, 2, 4, false),
                       doctest::Contains("was trained with seed 1, but this trainer's seed is 2"),
                       composer::CheckpointError);
  CHECK_THROWS_WITH_AS(resume(0.1, 1, 2, false),
                       doctest::Contains("was trained with 2 batches per epoch, but this trainer's training data has 4"),
                       composer::CheckpointError);
  CHECK_NOTHROW(resume(0.1, 1, 4, false));
  // Allowed: the new learning rate applies from the next batch.
  auto allowed = resume(0.05, 1, 4, true);
  CHECK(allowed->state().timestamp.batch().count() == 2);
  allowed->fit();
  CHECK(allowed->state().optimizers.front()->param_groups().front().options().get_lr() == doctest::Approx(0.05));
}

TEST_CASE("a second Trainer on a save folder in use is refused; the folder is free again when the first ends") {
  const std::string folder = fresh_dir("locked");
  auto first_net = make_net();
  auto first = std::make_unique<composer::Trainer<>>(first_net, options_for(first_net, folder, "1ba"));
  auto net = make_net();
  const std::string held_by = "is in use by another run (process " + std::to_string(::getpid());
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, options_for(net, folder, "1ba")), doctest::Contains(held_by.c_str()),
                       io::FolderLockedError);
  first.reset();
  CHECK_NOTHROW(composer::Trainer<>(net, options_for(net, folder, "1ba")));
}

TEST_CASE("a resumed run rotates the checkpoints saved before the resume, keeping the newest k") {
  const std::string folder = fresh_dir("rotation");
  {
    auto net = make_net();
    auto options = options_for(net, folder, "2ba");
    options.save_num_checkpoints_to_keep = 2;
    composer::Trainer<> trainer(net, std::move(options));
    trainer.fit();
  }
  CHECK(names_in(folder) == std::vector<std::string>{"ep0-ba1-rank0.pt", "ep0-ba2-rank0.pt"});
  auto net = make_net();
  auto options = options_for(net, folder, "5ba");
  options.save_num_checkpoints_to_keep = 2;
  options.autoresume = true;
  composer::Trainer<> trainer(net, std::move(options));
  trainer.fit();
  CHECK(names_in(folder) == std::vector<std::string>{"ep1-ba4-rank0.pt", "ep2-ba5-rank0.pt"});
  CHECK(io::read_symlink(io::join(folder, "latest-rank0.pt")) == "ep2-ba5-rank0.pt");
}

TEST_CASE("a latest link that leads nowhere stands for the newest whole checkpoint; stale temporaries go") {
  const std::string folder = fresh_dir("no_latest");
  {
    auto net = make_net();
    composer::Trainer<> trainer(net, options_for(net, folder, "3ba"));
    trainer.fit();
  }
  // A kill before the link was first made: no link, only its temporary; the newest checkpoint is half written.
  io::remove(io::join(folder, "latest-rank0.pt"));
  write_bytes(io::join(folder, "latest-rank0.pt.tmp"), {'x'});
  std::vector<char> newest = read_bytes(io::join(folder, "ep1-ba3-rank0.pt"));
  newest.resize(newest.size() / 3);
  write_bytes(io::join(folder, "ep1-ba3-rank0.pt"), newest);
  write_bytes(io::join(folder, "ep1-ba3-rank1.pt.tmp"), {'y'});  // another rank's: not this Trainer's to remove
  CHECK(composer::CheckpointSaver::latest_checkpoint(folder, 0) == io::join(folder, "ep0-ba2-rank0.pt"));
  auto net = make_net();
  auto options = options_for(net, folder, "3ba");
  options.load_path = io::join(folder, "latest-rank0.pt");
  composer::Trainer<> trainer(net, std::move(options));
  CHECK(trainer.state().timestamp.batch().count() == 2);
  CHECK_FALSE(io::exists(io::join(folder, "latest-rank0.pt.tmp")));
  CHECK(io::exists(io::join(folder, "ep1-ba3-rank1.pt.tmp")));
}

TEST_CASE("a checkpoint of another model is refused by its model tensors, not by a raw optimizer error") {
  const std::string folder = fresh_dir("other_model");
  train_and_save(folder);
  torch::manual_seed(1);
  torch::nn::Sequential other(torch::nn::Linear(4, 6), torch::nn::Linear(6, 3));
  auto sgd = std::make_shared<torch::optim::SGD>(other->parameters(), torch::optim::SGDOptions(0.1));
  CHECK_THROWS_WITH_AS(composer::Trainer<>(other, {.train_dataloader = make_data(), .optimizers = {sgd},
                                                   .load_path = io::join(folder, "ep0-ba2-rank0.pt"),
                                                   .progress_bar = false}),
                       doctest::Contains("model tensor"), composer::CheckpointError);
}
