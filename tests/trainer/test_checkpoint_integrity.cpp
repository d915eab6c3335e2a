// Checkpoint integrity: every record's CRC-32 is verified on loading, so a flipped bit in a tensor or in the
// stored counters is refused with a CheckpointError naming the record, before anything changes; the counters a
// Trainer-written file name carries must match those it holds.
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

// Trains 2 batches saving every batch into `folder`; returns the trainer's model weight after the run.
at::Tensor train_and_save(const std::string& folder) {
  auto net = make_net();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::Trainer<> trainer(net, {.train_dataloader = make_data(),
                                    .max_duration = Time("2ba"),
                                    .optimizers = {sgd},
                                    .save_folder = folder,
                                    .save_interval = Time("1ba"),
                                    .seed = 1,
                                    .progress_bar = false});
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
  // The second checkpoint's temporary file is a link to /dev/full, where every write fails with ENOSPC.
  const std::string tmp = io::join(folder, "ep0-ba2-rank0.pt.tmp");
  io::create_symlink("/dev/full", tmp);
  auto net = make_net();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::Trainer<> trainer(net, {.train_dataloader = make_data(),
                                    .max_duration = Time("2ba"),
                                    .optimizers = {sgd},
                                    .save_folder = folder,
                                    .save_interval = Time("1ba"),
                                    .seed = 1,
                                    .progress_bar = false,
                                    .metrics_file = metrics});
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
