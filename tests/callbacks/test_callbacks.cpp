// The callbacks library in real Trainer runs on tiny synthetic data: LRMonitor, SpeedMonitor, EarlyStopper,
// ThresholdStopper and MemoryMonitor, their logged keys and values, when the stoppers stop, their checkpointed
// state, and their argument errors.
#include <torch/torch.h>

#include <composer/callbacks/early_stopper.hpp>
#include <composer/callbacks/lr_monitor.hpp>
#include <composer/callbacks/memory_monitor.hpp>
#include <composer/callbacks/speed_monitor.hpp>
#include <composer/callbacks/threshold_stopper.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>
#include <composer/optim/schedulers.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/error_messages.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using composer::Event;
using composer::Time;
using composer::callbacks::EarlyStopper;
using composer::callbacks::LRMonitor;
using composer::callbacks::MemoryMonitor;
using composer::callbacks::SpeedMonitor;
using composer::callbacks::ThresholdStopper;
using composer_test::check_bad_argument;
namespace io = composer::io;

namespace callbacks_test {

static_assert(composer::policy_check<LRMonitor, composer::State>::value);
static_assert(composer::policy_check<SpeedMonitor, composer::State>::value);
static_assert(composer::policy_check<EarlyStopper, composer::State>::value);
static_assert(composer::policy_check<ThresholdStopper, composer::State>::value);
static_assert(composer::policy_check<MemoryMonitor, composer::State>::value);
static_assert(composer::role_of<LRMonitor> == composer::Role::callback &&
              composer::role_of<SpeedMonitor> == composer::Role::callback &&
              composer::role_of<EarlyStopper> == composer::Role::callback &&
              composer::role_of<ThresholdStopper> == composer::Role::callback &&
              composer::role_of<MemoryMonitor> == composer::Role::callback);

composer::data::TensorLoader make_loader(std::int64_t samples, std::int64_t batch) {
  torch::manual_seed(1234);
  auto x = torch::randn({samples, 4});
  auto y = torch::randint(0, 3, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{.batch_size = batch});
}

torch::nn::Linear make_linear(std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::nn::Linear(4, 3);
}

std::shared_ptr<torch::optim::SGD> sgd(torch::nn::Module& module, double lr = 0.1) {
  return std::make_shared<torch::optim::SGD>(module.parameters(), torch::optim::SGDOptions(lr));
}

// Every logger call of a run, with the clock it was made at.
struct MetricLog {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr composer::EventSet events{};
  struct Call {
    std::int64_t batch;
    std::int64_t epoch;
    composer::Metrics metrics;
  };
  std::vector<Call> calls;
  void log_metrics(const composer::Metrics& metrics, const composer::State& state) {
    calls.push_back({state.timestamp.batch().count(), state.timestamp.epoch().count(), metrics});
  }
  // The calls that logged `key`.
  std::vector<Call> with(const std::string& key) const {
    std::vector<Call> found;
    for (const auto& call : calls)
      if (call.metrics.count(key) != 0) found.push_back(call);
    return found;
  }
  // Whether any call logged a key starting with `prefix`.
  bool any_key_starting(const std::string& prefix) const {
    for (const auto& call : calls)
      for (const auto& [key, value] : call.metrics)
        if (key.rfind(prefix, 0) == 0) return true;
    return false;
  }
};

// Puts a metric value of its own making where the stoppers read it, before they look (declare it before them):
// under `label` in `State::eval_metric_values` at EVAL_END, or in `State::train_metric_values["train"]` at
// BATCH_END and EPOCH_END for the label "train"; the value is `value(timestamp)`.
struct ScriptedMetric {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_END, Event::EPOCH_END, Event::EVAL_END};
  std::string label;
  std::string metric;
  std::function<double(const composer::Timestamp&)> value;
  void apply(Event, composer::State& state) {
    if (state.dataloader_label != label) return;
    auto& by_label = label == "train" ? state.train_metric_values : state.eval_metric_values;
    by_label[label][metric] = value(state.timestamp);
  }
};

// A value per completed epoch (epoch 1 is the first entry); the last entry repeats.
std::function<double(const composer::Timestamp&)> by_epoch(std::vector<double> values) {
  return [values](const composer::Timestamp& t) {
    const auto epoch = static_cast<std::size_t>(std::max<std::int64_t>(t.epoch().count(), 1));
    return values[std::min(epoch, values.size()) - 1];
  };
}

// What each BATCH_END and BATCH_CHECKPOINT saw: the clock, the training time, the steady clock and max_duration.
struct ClockProbe {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_END, Event::BATCH_CHECKPOINT};
  struct Seen {
    std::int64_t samples;
    double train_wct;
    double steady;
    std::string max_duration;
  };
  std::map<std::int64_t, Seen> at_batch_end;
  std::map<std::int64_t, std::string> max_duration_at_checkpoint;
  void apply(Event event, composer::State& state) {
    const auto batch = state.timestamp.batch().count();
    if (event == Event::BATCH_CHECKPOINT) {
      max_duration_at_checkpoint[batch] = state.max_duration()->to_string();
      return;
    }
    const double steady =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    at_batch_end[batch] = {state.timestamp.sample().count(), state.timestamp.total_wct().count(), steady,
                           state.max_duration()->to_string()};
  }
};

// An evaluation that takes at least 100 ms per batch.
struct SlowEvaluation {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::EVAL_BATCH_END};
  void apply(Event, composer::State&) { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }
};

// A FILE* read back as a string.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) { REQUIRE(file_ != nullptr); }
  ~Capture() { std::fclose(file_); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  std::FILE* file() const { return file_; }
  std::string text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0) out.append(buffer, n);
    return out;
  }

 private:
  std::FILE* file_;
};

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_callbacks_test_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

// 8 samples in batches of 4 (two batches an epoch), evaluated on 6 samples every epoch, up to `max_duration`.
composer::TrainerOptions two_batch_epochs(torch::nn::Module& net, Time max_duration, double lr = 0.1) {
  return {.train_dataloader = make_loader(8, 4),
          .eval_dataloader = make_loader(6, 3),
          .max_duration = max_duration,
          .optimizers = {sgd(net, lr)},
          .seed = 3,
          .progress_bar = false};
}

}  // namespace callbacks_test

using namespace callbacks_test;

// ---- LRMonitor -------------------------------------------------------------------------------------------------

TEST_CASE("LRMonitor logs every optimizer's and group's scheduled learning rate after each batch") {
  auto net = make_linear();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{net->weight}, std::make_unique<torch::optim::SGDOptions>(0.4));
  groups.emplace_back(std::vector<torch::Tensor>{net->bias}, std::make_unique<torch::optim::SGDOptions>(0.2));
  auto plain_sgd = std::make_shared<torch::optim::SGD>(groups, torch::optim::SGDOptions(0.4));
  // a second optimizer, of another class, over a parameter outside the model (it never gets a gradient)
  auto extra = torch::zeros({1}, torch::requires_grad());
  auto adam = std::make_shared<torch::optim::Adam>(std::vector<torch::Tensor>{extra}, torch::optim::AdamOptions(0.01));
  composer::Trainer<LRMonitor, MetricLog> trainer(
      net, {.train_dataloader = make_loader(12, 2),
            .max_duration = Time("6ba"),
            .optimizers = {plain_sgd, adam},
            // multiplier 1 − 0.5·min(1, k/4) for batch k = 0, 1, ...: 1, 0.875, 0.75, 0.625, 0.5, 0.5
            .schedulers = {composer::optim::LinearScheduler{.alpha_i = 1.0, .alpha_f = 0.5, .t_max = Time("4ba")}},
            .seed = 1,
            .progress_bar = false},
      LRMonitor{}, MetricLog{});
  trainer.fit();

  const std::array<double, 6> multiplier{1.0, 0.875, 0.75, 0.625, 0.5, 0.5};
  const auto calls = trainer.get<MetricLog>().with("lr-SGD/group0");
  REQUIRE(calls.size() == 6);
  for (std::size_t k = 0; k < calls.size(); ++k) {
    CAPTURE(k);
    CHECK(calls[k].batch == static_cast<std::int64_t>(k) + 1);  // logged at the BATCH_END of batch k
    CHECK(calls[k].metrics.size() == 3);
    CHECK(calls[k].metrics.at("lr-SGD/group0") == doctest::Approx(0.4 * multiplier[k]));
    CHECK(calls[k].metrics.at("lr-SGD/group1") == doctest::Approx(0.2 * multiplier[k]));
    CHECK(calls[k].metrics.at("lr-Adam/group0") == doctest::Approx(0.01 * multiplier[k]));
  }
}

TEST_CASE("optimizer_class_name is the optimizer's class name without its namespace") {
  auto net = make_linear();
  CHECK(composer::callbacks::optimizer_class_name(*sgd(*net)) == "SGD");
  torch::optim::AdamW adamw(net->parameters());
  CHECK(composer::callbacks::optimizer_class_name(adamw) == "AdamW");
  torch::optim::RMSprop rmsprop(net->parameters());
  const torch::optim::Optimizer& as_base = rmsprop;
  CHECK(composer::callbacks::optimizer_class_name(as_base) == "RMSprop");
}

// ---- SpeedMonitor ----------------------------------------------------------------------------------------------

TEST_CASE("SpeedMonitor's throughput is the window's samples and batches over the window's training time") {
  auto net = make_linear();
  // 11 samples in batches of 3: 3, 3, 3, 2 samples, four batches an epoch, eight in all
  composer::Trainer<ClockProbe, SpeedMonitor, MetricLog> trainer(
      net, {.train_dataloader = make_loader(11, 3), .max_duration = Time("2ep"), .optimizers = {sgd(*net)},
            .seed = 1, .progress_bar = false},
      ClockProbe{}, SpeedMonitor(3, "minutes"), MetricLog{});
  trainer.fit();
  const auto& seen = trainer.get<ClockProbe>().at_batch_end;
  const auto& log = trainer.get<MetricLog>();

  const auto throughput = log.with("throughput/samples_per_sec");
  REQUIRE(throughput.size() == 5);  // from the 4th batch on: a window of 3 batches needs 4 records
  for (const auto& call : throughput) {
    CAPTURE(call.batch);
    const auto& now = seen.at(call.batch);
    const auto& before = seen.at(call.batch - 3);
    const double elapsed = now.train_wct - before.train_wct;
    REQUIRE(elapsed > 0);
    const double samples = static_cast<double>(now.samples - before.samples);
    double expected_samples = 0;  // each epoch's 4th batch holds 2 samples, the others 3
    for (std::int64_t b = call.batch - 2; b <= call.batch; ++b) expected_samples += b % 4 == 0 ? 2 : 3;
    CHECK(samples == expected_samples);
    CHECK(call.metrics.at("throughput/samples_per_sec") == doctest::Approx(samples / elapsed));
    CHECK(call.metrics.at("throughput/batches_per_sec") == doctest::Approx(3.0 / elapsed));
    CHECK(call.metrics.at("throughput/device/samples_per_sec") == doctest::Approx(samples / elapsed));
    CHECK(call.metrics.at("throughput/device/batches_per_sec") == doctest::Approx(3.0 / elapsed));
    CHECK(call.metrics.at("throughput/samples_per_sec") > 0);
  }
  CHECK(throughput.front().batch == 4);
  CHECK_FALSE(log.any_key_starting("throughput/tokens"));  // these batches count no tokens

  const auto clocks = log.with("time/train");
  REQUIRE(clocks.size() == 8);  // every batch
  for (const auto& call : clocks) {
    CAPTURE(call.batch);
    CHECK(call.metrics.at("time/train") == doctest::Approx(seen.at(call.batch).train_wct / 60.0));
    CHECK(call.metrics.at("time/val") == 0.0);
    CHECK(call.metrics.at("time/total") == doctest::Approx(call.metrics.at("time/train")));
  }
  CHECK(trainer.get<SpeedMonitor>().time_divider() == 60.0);
  CHECK(SpeedMonitor().time_divider() == 3600.0);  // Composer's default unit: hours
  CHECK(SpeedMonitor().options().window_size == 100);
}

TEST_CASE("a slow evaluation does not lower SpeedMonitor's throughput and is counted in time/val") {
  auto net = make_linear();
  composer::TrainerOptions options{.train_dataloader = make_loader(12, 2),
                                   .eval_dataloader = make_loader(3, 3),
                                   .max_duration = Time("6ba"),
                                   .optimizers = {sgd(*net)},
                                   .eval_interval = Time("1ba"),  // after every batch, 100 ms each
                                   .seed = 1,
                                   .progress_bar = false};
  composer::Trainer<ClockProbe, SlowEvaluation, SpeedMonitor, MetricLog> trainer(
      net, options, ClockProbe{}, SlowEvaluation{}, SpeedMonitor(2, "seconds"), MetricLog{});
  trainer.fit();
  const auto& seen = trainer.get<ClockProbe>().at_batch_end;
  const auto& log = trainer.get<MetricLog>();

  const auto throughput = log.with("throughput/samples_per_sec");
  REQUIRE(throughput.size() == 4);  // batches 3 to 6
  for (const auto& call : throughput) {
    CAPTURE(call.batch);
    const auto& now = seen.at(call.batch);
    const auto& before = seen.at(call.batch - 2);
    const double training = now.train_wct - before.train_wct;
    const double wall = now.steady - before.steady;  // two 100 ms evaluations happened in between
    REQUIRE(wall >= 0.2);
    const double rate = call.metrics.at("throughput/samples_per_sec");
    CHECK(rate == doctest::Approx(4.0 / training));
    // Counting the evaluations would give 4 / wall; the training-only rate is far above it.
    CHECK(rate > 2.0 * (4.0 / wall));
  }

  const auto clocks = log.with("time/val");
  REQUIRE(clocks.size() == 6);
  for (const auto& call : clocks) {
    CAPTURE(call.batch);
    // At batch b's BATCH_END, the evaluations after batches 1 .. b−1 are done.
    CHECK(call.metrics.at("time/val") >= 0.1 * static_cast<double>(call.batch - 1));
    CHECK(call.metrics.at("time/total") ==
          doctest::Approx(call.metrics.at("time/train") + call.metrics.at("time/val")));
  }
  CHECK(trainer.get<SpeedMonitor>().total_eval_seconds() >= 0.6);  // six evaluations

  // Its evaluation time survives a checkpoint, as Composer's state_dict keeps it.
  torch::serialize::OutputArchive out;
  trainer.get<SpeedMonitor>().save_state(out);
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  SpeedMonitor restored;
  restored.load_state(in);
  CHECK(restored.total_eval_seconds() == trainer.get<SpeedMonitor>().total_eval_seconds());
}

// ---- EarlyStopper ----------------------------------------------------------------------------------------------

TEST_CASE("EarlyStopper on the Trainer's evaluation: a metric that stays put stops the run after patience") {
  // lr 0: the model never changes, so every evaluation gives the same accuracy and cross-entropy. The first
  // evaluation (epoch 1) sets the best; with a patience of 1 epoch, epoch 3 is the first more than 1 epoch past it.
  for (const std::string monitor : {"accuracy", "cross_entropy"}) {
    CAPTURE(monitor);
    auto net = make_linear();
    composer::Trainer<EarlyStopper> trainer(net, two_batch_epochs(*net, Time("10ep"), /*lr=*/0.0),
                                            EarlyStopper(monitor, "eval"));
    trainer.fit();
    CHECK(trainer.state().timestamp.epoch().count() == 3);
    CHECK(trainer.state().timestamp.batch().count() == 6);
    const auto& stopper = trainer.get<EarlyStopper>();
    CHECK(stopper.comparison() == (monitor == "accuracy" ? "greater" : "less"));
    REQUIRE(stopper.best());
    CHECK(*stopper.best() == trainer.state().eval_metric_values.at("eval").at(monitor));
    CHECK(stopper.best_epoch() == 1);
    CHECK(stopper.best_batch() == 2);
  }
}

TEST_CASE("EarlyStopper does not stop while the metric improves") {
  auto net = make_linear();
  composer::Trainer<ScriptedMetric, EarlyStopper> trainer(
      net, two_batch_epochs(*net, Time("6ep")),
      ScriptedMetric{"eval", "accuracy", by_epoch({0.1, 0.2, 0.3, 0.4, 0.5, 0.6})},
      EarlyStopper("accuracy", "eval", {}, 0.0, 1));
  trainer.fit();
  CHECK(trainer.state().timestamp.epoch().count() == 6);
  CHECK(*trainer.state().max_duration() == Time("6ep"));  // never stopped
  CHECK(trainer.get<EarlyStopper>().best() == 0.6);
  CHECK(trainer.get<EarlyStopper>().best_epoch() == 6);
}

namespace callbacks_test {
// Accuracy by epoch: best 0.6 at epoch 2 (0.6 again at 3 and 0.55 at 4 are no improvement), 0.7 at epoch 5,
// then nothing better: with a patience of 2 epochs the run stops at epoch 8, the first more than 2 past epoch 5.
const std::vector<double> plateaus{0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.69, 0.1};

using StopperTrainer = composer::Trainer<ScriptedMetric, EarlyStopper>;

composer::TrainerOptions plateau_options(torch::nn::Module& net, const std::string& load_path = "") {
  auto options = two_batch_epochs(net, Time("20ep"));
  options.load_path = load_path;
  return options;
}

ScriptedMetric plateau_metric() { return ScriptedMetric{"eval", "accuracy", by_epoch(plateaus)}; }
}  // namespace callbacks_test

TEST_CASE("EarlyStopper stops once more than `patience` epochs have passed without improvement") {
  auto net = make_linear();
  StopperTrainer trainer(net, plateau_options(*net), plateau_metric(), EarlyStopper("accuracy", "eval", {}, 0.0, "2ep"));
  trainer.fit();
  CHECK(trainer.state().timestamp.epoch().count() == 8);
  CHECK(*trainer.state().max_duration() == Time("16ba"));  // stop_training: max_duration ← the current batch
  CHECK(trainer.get<EarlyStopper>().best() == 0.7);
  CHECK(trainer.get<EarlyStopper>().best_epoch() == 5);
  CHECK(trainer.get<EarlyStopper>().best_batch() == 10);
}

TEST_CASE("EarlyStopper counts an improvement only when it beats the best by more than min_delta") {
  // +0.02 an epoch: an improvement without min_delta; with min_delta 0.05 epochs 2 and 3 are not (0.04 ≤ 0.05),
  // so a patience of 1 epoch stops the run at epoch 3.
  const auto rising = by_epoch({0.50, 0.52, 0.54, 0.56, 0.58, 0.60});
  for (const double min_delta : {0.0, 0.05, -0.05}) {  // a negative min_delta counts as its absolute value
    CAPTURE(min_delta);
    auto net = make_linear();
    StopperTrainer trainer(net, two_batch_epochs(*net, Time("6ep")), ScriptedMetric{"eval", "accuracy", rising},
                           EarlyStopper("accuracy", "eval", {}, min_delta, 1));
    trainer.fit();
    CHECK(trainer.state().timestamp.epoch().count() == (min_delta == 0.0 ? 6 : 3));
    CHECK(trainer.get<EarlyStopper>().options().min_delta == std::fabs(min_delta));
  }
}

TEST_CASE("EarlyStopper on a training loss: lower is better, looked at each epoch end") {
  // my_loss by epoch: best 0.9 at epoch 2; 0.95 and 0.92 are worse, and epoch 4 is more than 1 epoch past 2.
  auto net = make_linear();
  composer::TrainerOptions options = two_batch_epochs(*net, Time("10ep"));
  options.eval_dataloader = composer::data::AnyLoader();
  StopperTrainer trainer(net, options, ScriptedMetric{"train", "my_loss", by_epoch({1.0, 0.9, 0.95, 0.92, 0.5})},
                         EarlyStopper("my_loss", "train"));
  trainer.fit();
  CHECK(trainer.get<EarlyStopper>().comparison() == "less");
  CHECK(trainer.state().timestamp.epoch().count() == 4);
  CHECK(trainer.get<EarlyStopper>().best() == 0.9);

  // The same losses with comp "greater" (a custom choice) make epoch 1's 1.0 the best that is never beaten:
  // stopped at epoch 3.
  auto other_net = make_linear();
  StopperTrainer greater(other_net, options, ScriptedMetric{"train", "my_loss", by_epoch({1.0, 0.9, 0.95, 0.92, 0.5})},
                         EarlyStopper("my_loss", "train", "gt"));
  greater.fit();
  CHECK(greater.get<EarlyStopper>().comparison() == "greater");
  CHECK(greater.state().timestamp.epoch().count() == 3);
}

TEST_CASE("EarlyStopper with a patience in batches looks at every batch end") {
  // Six batches an epoch. my_loss is 1/b for b ≤ 2 and 0.5 after: best 0.5 at batch 2, and batch 6 is the first
  // more than 3 batches past it. Had it looked at epoch ends only, the first look (batch 6) would set the best.
  auto net = make_linear();
  composer::TrainerOptions options{.train_dataloader = make_loader(12, 2),
                                   .max_duration = Time("5ep"),
                                   .optimizers = {sgd(*net)},
                                   .seed = 1,
                                   .progress_bar = false};
  auto loss = [](const composer::Timestamp& t) {
    const auto batch = t.batch().count();
    return batch <= 2 ? 1.0 / static_cast<double>(batch) : 0.5;
  };
  StopperTrainer trainer(net, options, ScriptedMetric{"train", "my_loss", loss},
                         EarlyStopper({.monitor = "my_loss", .dataloader_label = "train", .patience = "3ba"}));
  trainer.fit();
  CHECK(trainer.get<EarlyStopper>().patience() == Time("3ba"));
  CHECK(trainer.state().timestamp.batch().count() == 6);
  CHECK(trainer.get<EarlyStopper>().best_batch() == 2);
}

TEST_CASE("EarlyStopper's best value and when it occurred survive a checkpoint, so a resumed run stops on time") {
  const std::string dir = fresh_dir("early_stopper");
  auto make_stopper = [] { return EarlyStopper("accuracy", "eval", {}, 0.0, 2); };

  auto reference_net = make_linear();
  StopperTrainer reference(reference_net, plateau_options(*reference_net), plateau_metric(), make_stopper());
  reference.fit();
  REQUIRE(reference.state().timestamp.epoch().count() == 8);

  auto first_net = make_linear();
  StopperTrainer first(first_net, plateau_options(*first_net), plateau_metric(), make_stopper());
  first.fit(Time("6ep"));
  REQUIRE(first.get<EarlyStopper>().best_epoch() == 5);
  first.save_checkpoint(dir + "/epoch6.pt");

  auto resumed_net = make_linear();
  StopperTrainer resumed(resumed_net, plateau_options(*resumed_net, dir + "/epoch6.pt"), plateau_metric(),
                         make_stopper());
  CHECK(resumed.get<EarlyStopper>().best() == 0.7);
  CHECK(resumed.get<EarlyStopper>().best_epoch() == 5);
  CHECK(resumed.get<EarlyStopper>().best_batch() == 10);
  resumed.fit();
  CHECK(resumed.state().timestamp == reference.state().timestamp);  // epoch 8, as uninterrupted
  // A stopper that starts afresh at epoch 6 takes epoch 7's 0.69 as its first best and stops at epoch 10.
  auto fresh_net = make_linear();
  StopperTrainer fresh(fresh_net, plateau_options(*fresh_net, dir + "/epoch6.pt"), plateau_metric(), make_stopper());
  fresh.get<EarlyStopper>() = make_stopper();
  fresh.fit();
  CHECK(fresh.state().timestamp.epoch().count() == 10);

  // The archive round trip on its own, with a best value and without one.
  for (const bool looked : {true, false}) {
    CAPTURE(looked);
    const EarlyStopper source = looked ? reference.get<EarlyStopper>() : make_stopper();
    torch::serialize::OutputArchive out;
    source.save_state(out);
    std::stringstream bytes;
    out.save_to(bytes);
    torch::serialize::InputArchive in;
    in.load_from(bytes);
    EarlyStopper restored = make_stopper();
    restored.load_state(in);
    CHECK(restored.best() == source.best());
    CHECK(restored.best_epoch() == source.best_epoch());
    CHECK(restored.best_batch() == source.best_batch());
  }
}

TEST_CASE("EarlyStopper refuses bad arguments and names a missing metric") {
  check_bad_argument([] { EarlyStopper("", "eval"); }, {"EarlyStopper", "monitor"});
  check_bad_argument([] { EarlyStopper("accuracy", ""); }, {"EarlyStopper", "dataloader_label"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, 0.0, -1); }, {"patience must not be negative", "-1ep"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, 0.0, "-2ba"); }, {"patience must not be negative"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, 0.0, "soon"); }, {"patience 'soon'", "not a time"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, 0.0, "1.5ep"); }, {"patience '1.5ep'"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, 0.0, "100sp"); }, {"patience", "ep", "ba", "100sp"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, 0.0, Time("0.5dur")); }, {"patience", "0.5dur"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", "bigger"); }, {"EarlyStopper", "comp 'bigger'", "'gt'"});
  check_bad_argument([] { EarlyStopper("accuracy", "eval", {}, std::numeric_limits<double>::quiet_NaN()); },
                     {"min_delta"});
  // The accepted forms of comp and patience.
  CHECK(EarlyStopper("accuracy", "eval", "LT").comparison() == "less");
  CHECK(EarlyStopper("val_loss", "eval", "greater").comparison() == "greater");
  CHECK(EarlyStopper("Perplexity", "eval").comparison() == "less");
  CHECK(EarlyStopper("top1_error", "eval").comparison() == "less");
  CHECK(EarlyStopper("f1", "eval", [](double a, double b) { return a > b + 1; }).comparison() == "custom");
  CHECK(EarlyStopper("accuracy", "eval").patience() == Time("1ep"));
  CHECK(EarlyStopper("accuracy", "eval", {}, 0.0, 0).patience() == Time("0ep"));
  CHECK(EarlyStopper("accuracy", "eval", {}, 0.0, Time("7ba")).patience() == Time("7ba"));

  // A metric the evaluation does not compute is named, with the ones it does.
  auto net = make_linear();
  composer::Trainer<EarlyStopper> trainer(net, two_batch_epochs(*net, Time("2ep")), EarlyStopper("f1", "eval"));
  check_bad_argument([&] { trainer.fit(); }, {"EarlyStopper", "'f1'", "'eval'", "accuracy, cross_entropy"});
}

// ---- ThresholdStopper ------------------------------------------------------------------------------------------

TEST_CASE("ThresholdStopper stops at the evaluation where the metric crosses the threshold") {
  struct Case {
    std::vector<double> accuracy;
    std::int64_t stop_epoch;
  };
  // 0.8 > 0.75 at epoch 3; a value equal to the threshold is not past it.
  for (const auto& [accuracy, stop_epoch] : {Case{{0.2, 0.5, 0.8, 0.9}, 3}, Case{{0.75, 0.75, 0.76}, 3}}) {
    CAPTURE(stop_epoch);
    auto net = make_linear();
    composer::Trainer<ScriptedMetric, ThresholdStopper> trainer(
        net, two_batch_epochs(*net, Time("10ep")), ScriptedMetric{"eval", "accuracy", by_epoch(accuracy)},
        ThresholdStopper("accuracy", "eval", 0.75));
    trainer.fit();
    CHECK(trainer.state().timestamp.epoch().count() == stop_epoch);
    CHECK(trainer.get<ThresholdStopper>().comparison() == "greater");
  }
}

TEST_CASE("ThresholdStopper reads the Trainer's own evaluation metrics") {
  struct Case {
    const char* monitor;
    double threshold;
    std::int64_t stop_epoch;
  };
  // Any accuracy exceeds −1 and any cross-entropy is below 1e9: stopped at the first evaluation. No cross-entropy
  // is below 0: the run goes on to max_duration.
  for (const auto& [monitor, threshold, stop_epoch] :
       {Case{"accuracy", -1.0, 1}, Case{"cross_entropy", 1e9, 1}, Case{"cross_entropy", 0.0, 3}}) {
    CAPTURE(monitor);
    CAPTURE(threshold);
    auto net = make_linear();
    composer::Trainer<ThresholdStopper> trainer(net, two_batch_epochs(*net, Time("3ep")),
                                                ThresholdStopper(monitor, "eval", threshold));
    trainer.fit();
    CHECK(trainer.state().timestamp.epoch().count() == stop_epoch);
  }
}

namespace callbacks_test {
using ThresholdTrainer = composer::Trainer<ScriptedMetric, ThresholdStopper, ClockProbe>;

// Three batches an epoch, no evaluation; my_loss = 1/b after batch b, so it first falls below 0.3 at batch 4.
ThresholdTrainer falling_loss_trainer(torch::nn::Linear& net, bool stop_on_batch) {
  composer::TrainerOptions options{.train_dataloader = make_loader(6, 2),
                                   .max_duration = Time("5ep"),
                                   .optimizers = {sgd(*net)},
                                   .seed = 1,
                                   .progress_bar = false};
  auto loss = [](const composer::Timestamp& t) { return 1.0 / static_cast<double>(t.batch().count()); };
  return ThresholdTrainer(net, options, ScriptedMetric{"train", "my_loss", loss},
                          ThresholdStopper({.monitor = "my_loss", .dataloader_label = "train", .threshold = 0.3,
                                            .stop_on_batch = stop_on_batch}),
                          ClockProbe{});
}
}  // namespace callbacks_test

TEST_CASE("ThresholdStopper on a training metric looks at epoch ends, and at batch ends with stop_on_batch") {
  {
    // Without stop_on_batch: the end of epoch 1 (1/3) is not below 0.3; the end of epoch 2 (1/6) is.
    auto net = make_linear();
    auto trainer = falling_loss_trainer(net, /*stop_on_batch=*/false);
    trainer.fit();
    CHECK(trainer.get<ThresholdStopper>().comparison() == "less");
    CHECK(trainer.state().timestamp.epoch().count() == 2);
    CHECK(trainer.state().timestamp.batch().count() == 6);
    CHECK(trainer.get<ClockProbe>().max_duration_at_checkpoint.at(4) == "5ep");  // nothing at batch 4
  }
  {
    // With stop_on_batch: stop_training() at batch 4's BATCH_END, before its BATCH_CHECKPOINT.
    auto net = make_linear();
    auto trainer = falling_loss_trainer(net, /*stop_on_batch=*/true);
    trainer.fit();
    const auto& probe = trainer.get<ClockProbe>();
    CHECK(probe.at_batch_end.at(3).max_duration == "5ep");
    CHECK(probe.max_duration_at_checkpoint.at(3) == "5ep");
    CHECK(probe.max_duration_at_checkpoint.at(4) == "4ba");
  }
}

// The Trainer reads State::max_duration after every batch, so a stop within an epoch ends the run there.
TEST_CASE("ThresholdStopper with stop_on_batch ends the run right after the crossing batch") {
  auto net = make_linear();
  auto trainer = falling_loss_trainer(net, /*stop_on_batch=*/true);
  trainer.fit();
  CHECK(trainer.state().timestamp.batch().count() == 4);
  CHECK(trainer.state().timestamp.epoch().count() == 1);
  CHECK(trainer.get<ClockProbe>().at_batch_end.count(5) == 0);
}

TEST_CASE("ThresholdStopper refuses bad arguments") {
  check_bad_argument([] { ThresholdStopper("", "eval", 0.5); }, {"ThresholdStopper", "monitor"});
  check_bad_argument([] { ThresholdStopper("accuracy", "", 0.5); }, {"ThresholdStopper", "dataloader_label"});
  check_bad_argument([] { ThresholdStopper({.monitor = "accuracy", .dataloader_label = "eval"}); },
                     {"ThresholdStopper", "threshold"});
  check_bad_argument([] { ThresholdStopper("accuracy", "eval", 0.5, "between"); }, {"comp 'between'"});
  CHECK(ThresholdStopper("train_loss", "train", 0.1).comparison() == "less");
  CHECK(ThresholdStopper("accuracy", "eval", 0.9, "lt").comparison() == "less");
  CHECK_FALSE(ThresholdStopper("accuracy", "eval", 0.9).stop_on_batch());
}

// ---- SpeedMonitor arguments ------------------------------------------------------------------------------------

TEST_CASE("SpeedMonitor refuses bad arguments") {
  check_bad_argument([] { SpeedMonitor(0); }, {"SpeedMonitor", "window_size", "0"});
  check_bad_argument([] { SpeedMonitor(-5); }, {"window_size", "-5"});
  check_bad_argument([] { SpeedMonitor(10, "weeks"); }, {"SpeedMonitor", "time_unit", "weeks"});
  CHECK(SpeedMonitor(10, "days").time_divider() == 86400.0);
}

// ---- MemoryMonitor ---------------------------------------------------------------------------------------------

TEST_CASE("MemoryMonitor on the CPU logs nothing, says so once and does not throw") {
  Capture notices;
  auto net = make_linear();
  composer::Trainer<MemoryMonitor, MetricLog> trainer(
      net, two_batch_epochs(*net, Time("2ep")), MemoryMonitor({.stream = notices.file()}), MetricLog{});
  CHECK_NOTHROW(trainer.fit());
  CHECK_FALSE(trainer.get<MetricLog>().any_key_starting("memory/"));
  CHECK_FALSE(trainer.get<MetricLog>().calls.empty());  // the run did log other things
  const std::string text = notices.text();
  CAPTURE(text);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);  // once, over 4 batches
  CHECK(text.find("MemoryMonitor") != std::string::npos);
  CHECK(text.find("cpu") != std::string::npos);
  CHECK(trainer.get<MemoryMonitor>().notice() + "\n" == text);
  if (!at::globalContext().hasCUDA()) CHECK_FALSE(composer::callbacks::cuda_memory_stats(0).has_value());
}

namespace callbacks_test {
// Stands in for c10's CachingDeviceAllocator DeviceStats: arrays of (current, peak, allocated, freed) per pool.
struct FakeStat {
  std::int64_t current = 0, peak = 0, allocated = 0, freed = 0;
};
using FakeStatArray = std::array<FakeStat, 3>;
struct FakeDeviceStats {
  FakeStatArray allocation, segment, active, inactive_split;
  FakeStatArray allocated_bytes, reserved_bytes, active_bytes, inactive_split_bytes;
  std::int64_t num_alloc_retries = 0;
};
}  // namespace callbacks_test

TEST_CASE("MemoryMonitor's report: torch.cuda.memory_stats names, gigabytes to 5 significant digits") {
  FakeDeviceStats stats;
  stats.allocated_bytes[0] = {1234567890, 987654321, 5, 6};  // all pools
  stats.allocated_bytes[2] = {7, 8, 9, 10};                  // large pool
  stats.reserved_bytes[0] = {2000000000, 0, 0, 0};
  stats.active_bytes[0] = {123456789012, 123456789012, 0, 0};
  stats.inactive_split_bytes[0] = {1, 3, 0, 0};
  stats.num_alloc_retries = 3;
  const auto flat = composer::callbacks::flatten_memory_stats(stats);
  CHECK(flat.at("allocated_bytes.all.current") == 1234567890);
  CHECK(flat.at("allocated_bytes.all.peak") == 987654321);
  CHECK(flat.at("allocated_bytes.all.allocated") == 5);
  CHECK(flat.at("allocated_bytes.all.freed") == 6);
  CHECK(flat.at("allocated_bytes.large_pool.current") == 7);
  CHECK(flat.at("allocated_bytes.small_pool.current") == 0);
  CHECK(flat.at("num_alloc_retries") == 3);
  CHECK(flat.count("segment.all.peak") == 1);
  CHECK(flat.count("requested_bytes.all.current") == 0);  // the stand-in has none
  CHECK(flat.size() == 8 * 3 * 4 + 1);

  const auto report = composer::callbacks::memory_report(flat, composer::callbacks::default_memory_keys());
  CHECK(report.size() == 9);
  CHECK(report.at("current_allocated_mem") == doctest::Approx(1.2346).epsilon(1e-12));
  CHECK(report.at("peak_allocated_mem") == doctest::Approx(0.98765).epsilon(1e-12));
  CHECK(report.at("current_reserved_mem") == 2.0);
  CHECK(report.at("peak_reserved_mem") == 0.0);
  CHECK(report.at("current_active_mem") == doctest::Approx(123.46).epsilon(1e-12));
  CHECK(report.at("current_inactive_mem") == doctest::Approx(1e-9).epsilon(1e-12));
  CHECK(report.at("peak_inactive_mem") == doctest::Approx(3e-9).epsilon(1e-12));
  CHECK(report.at("alloc_retries") == 3.0);

  // Custom keys: a name with "bytes" is logged with "gigabytes"; counts stay counts; absent statistics are skipped.
  const auto custom = composer::callbacks::memory_report(
      flat, {{"reserved_bytes.all.current", "reserved_bytes"}, {"allocated_bytes.large_pool.peak", "large_peak"},
             {"segment.all.current", "segments"}, {"no.such.stat", "missing"}});
  CHECK(custom.size() == 3);
  CHECK(custom.at("reserved_gigabytes") == 2.0);
  CHECK(custom.at("large_peak") == doctest::Approx(8e-9).epsilon(1e-12));
  CHECK(custom.at("segments") == 0.0);
  CHECK(MemoryMonitor().memory_keys() == composer::callbacks::default_memory_keys());
}
