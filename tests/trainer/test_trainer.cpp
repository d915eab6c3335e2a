// Trainer: event order, gradient accumulation, durations, closures, checkpoints and resume, bad losses.
#include <torch/torch.h>

#include <composer/data/tensor_loader.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/io/files.hpp>
#include <composer/optim/schedulers.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using composer::Event;
using composer::Time;
namespace io = composer::io;

namespace trainer_test {

// Records every event it sees, as a callback.
struct Recorder {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events = composer::EventSet::all();
  std::vector<std::string> seen;
  void apply(Event e, composer::State&) { seen.emplace_back(composer::to_string(e)); }
};

composer::data::TensorLoader make_loader(std::int64_t samples, std::int64_t batch, bool shuffle = false,
                                         std::uint64_t seed = 0, std::int64_t features = 4, std::int64_t classes = 3) {
  torch::manual_seed(1234);
  auto x = torch::randn({samples, features});
  auto y = torch::randint(0, classes, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, shuffle, false, seed});
}

torch::nn::Linear make_linear(std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::nn::Linear(4, 3);
}

std::shared_ptr<torch::optim::SGD> sgd(torch::nn::Module& module, double lr = 0.1, double momentum = 0.0) {
  return std::make_shared<torch::optim::SGD>(module.parameters(), torch::optim::SGDOptions(lr).momentum(momentum));
}

std::vector<std::string> expected_train_batch(int microbatches) {
  std::vector<std::string> events = {"before_dataloader", "after_dataloader", "batch_start", "before_train_batch"};
  for (int i = 0; i < microbatches; ++i)
    for (const char* e : {"before_forward", "after_forward", "before_loss", "after_loss", "before_backward", "after_backward"})
      events.emplace_back(e);
  for (const char* e : {"after_train_batch", "batch_end", "batch_checkpoint"}) events.emplace_back(e);
  return events;
}

std::vector<std::string> expected_eval(int batches) {
  std::vector<std::string> events = {"eval_start"};
  for (int i = 0; i < batches; ++i)
    for (const char* e : {"eval_batch_start", "eval_before_forward", "eval_after_forward", "eval_batch_end"})
      events.emplace_back(e);
  events.emplace_back("eval_end");
  return events;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_trainer_test_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

}  // namespace trainer_test

using namespace trainer_test;

TEST_CASE("a fit with microbatches and evaluation fires Composer's event sequence") {
  auto net = make_linear();
  composer::Trainer<Recorder> trainer(net, {.train_dataloader = make_loader(8, 4),
                                            .eval_dataloader = make_loader(3, 3),
                                            .max_duration = Time("1ep"),
                                            .optimizers = {sgd(*net)},
                                            .device_train_microbatch_size = 2,
                                            .seed = 1,
                                            .progress_bar = false});
  trainer.fit();
  std::vector<std::string> expected = {"init", "before_load", "after_load", "fit_start", "iteration_start", "epoch_start"};
  for (int b = 0; b < 2; ++b) {
    auto batch = expected_train_batch(2);
    expected.insert(expected.end(), batch.begin(), batch.end());
  }
  expected.insert(expected.end(), {"before_dataloader", "epoch_end", "eval_before_all"});
  auto eval = expected_eval(1);
  expected.insert(expected.end(), eval.begin(), eval.end());
  expected.insert(expected.end(), {"eval_after_all", "epoch_checkpoint", "fit_end"});
  CHECK(trainer.get<Recorder>().seen == expected);

  trainer.get<Recorder>().seen.clear();
  const auto by_label = trainer.eval();
  REQUIRE(by_label.size() == 1);
  const auto& metrics = by_label.at("eval");
  std::vector<std::string> standalone = {"eval_standalone_start"};
  standalone.insert(standalone.end(), eval.begin(), eval.end());
  standalone.emplace_back("eval_standalone_end");
  CHECK(trainer.get<Recorder>().seen == standalone);
  CHECK(metrics.at("accuracy") >= 0.0);
  CHECK(metrics.at("accuracy") <= 1.0);
  CHECK(trainer.state().eval_metric_values.at("eval").at("cross_entropy") == doctest::Approx(metrics.at("cross_entropy")));
}

namespace trainer_test {
// Keeps a copy of every parameter's gradient as it stands when the optimizer is about to step.
struct GradientProbe {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_TRAIN_BATCH};
  std::vector<torch::Tensor> grads;
  void apply(Event, composer::State& state) {
    grads.clear();
    for (const auto& p : state.model->parameters()) grads.push_back(p.grad().clone());
  }
};

std::vector<torch::Tensor> gradients_with_microbatch(std::optional<std::int64_t> microbatch) {
  auto net = make_linear(5);
  composer::Trainer<GradientProbe> trainer(net, {.train_dataloader = make_loader(6, 6),
                                                 .max_duration = Time("1ba"),
                                                 .optimizers = {sgd(*net)},
                                                 .device_train_microbatch_size = microbatch,
                                                 .seed = 1,
                                                 .progress_bar = false});
  trainer.fit();
  return trainer.get<GradientProbe>().grads;
}
}  // namespace trainer_test

TEST_CASE("gradient accumulation over microbatches equals the whole batch's gradient") {
  const auto whole = gradients_with_microbatch(std::nullopt);
  REQUIRE(whole.size() == 2);
  for (std::int64_t microbatch : {1, 2, 4, 5}) {  // 4 and 5 leave an uneven last microbatch
    CAPTURE(microbatch);
    const auto accumulated = gradients_with_microbatch(microbatch);
    REQUIRE(accumulated.size() == whole.size());
    for (std::size_t i = 0; i < whole.size(); ++i) CHECK(torch::allclose(accumulated[i], whole[i], 1e-5, 1e-6));
  }
}

TEST_CASE("max_duration in epochs, batches and samples stops exactly where Composer does") {
  struct Case {
    const char* duration;
    std::int64_t epoch, batch, sample;
  };
  // 10 samples in batches of 4: three batches (4, 4, 2) per epoch.
  for (const Case& c : {Case{"2ep", 2, 6, 20}, Case{"5ba", 1, 5, 18}, Case{"8sp", 0, 2, 8}, Case{"9sp", 1, 3, 10},
                        Case{"3ba", 1, 3, 10}}) {
    CAPTURE(c.duration);
    auto net = make_linear();
    composer::Trainer<> trainer(net, {.train_dataloader = make_loader(10, 4),
                                      .max_duration = Time(c.duration),
                                      .optimizers = {sgd(*net)},
                                      .seed = 3,
                                      .progress_bar = false});
    trainer.fit();
    const auto& t = trainer.state().timestamp;
    CHECK(trainer.state().train_batch_size == 4);
    CHECK(t.epoch().count() == c.epoch);
    CHECK(t.batch().count() == c.batch);
    CHECK(t.sample().count() == c.sample);
    CHECK_THROWS_WITH_AS(trainer.fit(), doctest::Contains("already reached max_duration"), std::invalid_argument);
  }
}

TEST_CASE("fit(duration) continues a stopped run") {
  auto net = make_linear();
  composer::Trainer<Recorder> trainer(net, {.train_dataloader = make_loader(10, 4),
                                            .max_duration = Time("2ba"),
                                            .optimizers = {sgd(*net)},
                                            .seed = 3,
                                            .progress_bar = false});
  trainer.fit();
  CHECK(trainer.state().timestamp.batch().count() == 2);
  trainer.fit(Time("3ba"));
  CHECK(trainer.state().timestamp.batch().count() == 5);
  CHECK(*trainer.state().max_duration() == Time("5ba"));
  const auto& seen = trainer.get<Recorder>().seen;
  CHECK(std::count(seen.begin(), seen.end(), "fit_start") == 2);
  CHECK(std::count(seen.begin(), seen.end(), "epoch_end") == 1);
  CHECK_THROWS_AS(trainer.fit(Time("0ba")), std::invalid_argument);
}

namespace trainer_test {
// An optimizer that evaluates its closure twice per step, as SAM does, then steps plain SGD.
class TwoPassSGD : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  int closure_calls = 0;
  torch::Tensor step(LossClosure closure = nullptr) override {
    TORCH_CHECK(closure != nullptr, "TwoPassSGD needs a closure");
    torch::Tensor loss;
    for (int pass = 0; pass < 2; ++pass) {
      at::AutoGradMode grad(true);
      loss = closure();
      ++closure_calls;
    }
    return torch::optim::SGD::step(nullptr);
  }
};

// A policy that swaps the optimizer for TwoPassSGD at INIT (as Composer's SAM does) and counts train batches.
struct UseTwoPass {
  static constexpr composer::EventSet events{Event::INIT, Event::BEFORE_TRAIN_BATCH};
  std::shared_ptr<TwoPassSGD> optimizer;
  int train_batches = 0;
  void apply(Event e, composer::State& state) {
    if (e == Event::INIT) {
      optimizer = std::make_shared<TwoPassSGD>(state.model->parameters(), torch::optim::SGDOptions(0.1));
      state.optimizers = {optimizer};
    } else {
      ++train_batches;
    }
  }
};
}  // namespace trainer_test

TEST_CASE("a closure-using optimizer gets the closure, and the train-batch events fire per call") {
  auto net = make_linear();
  composer::Trainer<UseTwoPass> trainer(net, {.train_dataloader = make_loader(8, 4),
                                              .max_duration = Time("3ba"),
                                              .optimizers = {sgd(*net)},
                                              .seed = 1,
                                              .progress_bar = false});
  trainer.fit();
  CHECK(trainer.get<UseTwoPass>().optimizer->closure_calls == 6);
  CHECK(trainer.get<UseTwoPass>().train_batches == 6);
  CHECK(trainer.state().timestamp.batch().count() == 3);
}

namespace trainer_test {
// Composer's MixUp on a small scale, with a counter that must survive checkpoints.
struct MixAndCount {
  static constexpr composer::EventSet events{Event::AFTER_DATALOADER, Event::AFTER_LOSS};
  torch::Tensor permuted_target;
  double mixing = 0.0;
  std::int64_t applied = 0;
  void apply(Event e, composer::State& state) {
    if (e == Event::AFTER_DATALOADER) {
      auto [x, y_perm, m] = composer::functional::mixup_batch(state.batch.inputs, state.batch.targets, {}, 0.4);
      state.batch.inputs = x;
      permuted_target = y_perm;
      mixing = m;
      ++applied;
    } else {
      state.loss = state.loss * (1 - mixing) + mixing * state.model.loss(state.outputs, permuted_target);
    }
  }
  void save_state(torch::serialize::OutputArchive& archive) const {
    archive.write("applied", torch::tensor(std::vector<std::int64_t>{applied}));
  }
  void load_state(torch::serialize::InputArchive& archive) {
    torch::Tensor t;
    archive.read("applied", t);
    applied = t.item<std::int64_t>();
  }
};

torch::nn::Sequential make_dropout_net(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::Dropout(0.3), torch::nn::ReLU(),
                               torch::nn::Linear(16, 3));
}

composer::TrainerOptions resume_options(torch::nn::Module& net, const std::string& load_path = "") {
  return {.train_dataloader = make_loader(12, 4, /*shuffle=*/true, /*seed=*/7),
          .max_duration = Time("8ba"),
          .optimizers = {sgd(net, 0.05, 0.9)},
          .load_path = load_path,
          .seed = 11,
          .progress_bar = false};
}
}  // namespace trainer_test

TEST_CASE("save at step k, resume, finish: bit-identical to an uninterrupted run") {
  const std::string dir = fresh_dir("resume");
  auto reference_net = make_dropout_net(42);
  composer::Trainer<MixAndCount> reference(reference_net, resume_options(*reference_net));
  reference.fit();

  auto first_net = make_dropout_net(42);
  composer::Trainer<MixAndCount> first(first_net, resume_options(*first_net));
  first.fit(Time("4ba"));  // stops mid-epoch (3 batches per epoch)
  first.save_checkpoint(dir + "/mid.pt");

  auto resumed_net = make_dropout_net(999);  // different initial weights: the checkpoint must overwrite them
  composer::Trainer<MixAndCount> resumed(resumed_net, resume_options(*resumed_net, dir + "/mid.pt"));
  CHECK(resumed.state().timestamp.batch().count() == 4);
  CHECK(resumed.get<MixAndCount>().applied == 4);
  resumed.fit();

  CHECK(resumed.state().timestamp == reference.state().timestamp);
  CHECK(resumed.get<MixAndCount>().applied == reference.get<MixAndCount>().applied);
  const auto a = reference_net->parameters();
  const auto b = resumed_net->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
  // and the interrupted run really differs from a fresh one (the test can fail)
  auto fresh_net = make_dropout_net(999);
  CHECK_FALSE(torch::equal(fresh_net->parameters()[0], b[0]));
}

namespace trainer_test {
// What a callback can read at every event: the event, the clock, the first group's learning rate and the loss
// (`none` while State::loss holds none), one line each, with exact (hexadecimal) values.
struct Trace {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events = composer::EventSet::all();
  std::vector<std::string> lines;
  void apply(Event e, composer::State& state) {
    std::ostringstream line;
    line << std::hexfloat << composer::to_string(e) << " ep" << state.timestamp.epoch().count() << " ba"
         << state.timestamp.batch().count() << " lr=" << state.optimizers.front()->param_groups().front().options().get_lr()
         << " loss=";
    if (state.loss.defined())
      line << state.loss.item<double>();
    else
      line << "none";
    lines.push_back(line.str());
  }
  // The lines after the first one starting with `prefix` (the point a checkpoint was taken).
  std::vector<std::string> after(const std::string& prefix) const {
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (lines[i].rfind(prefix, 0) == 0) return {lines.begin() + static_cast<std::ptrdiff_t>(i) + 1, lines.end()};
    FAIL("no event line starts with " << prefix);
    return {};
  }
};

// 12 samples in batches of 4 (three batches an epoch), evaluated every epoch, with dropout, shuffling, momentum and
// a learning rate that changes every batch.
composer::TrainerOptions epoch_end_options(torch::nn::Module& net, const std::string& save_folder, Time save_interval,
                                           const std::string& load_path) {
  return {.train_dataloader = make_loader(12, 4, /*shuffle=*/true, /*seed=*/7),
          .eval_dataloader = make_loader(6, 3),
          .max_duration = Time("3ep"),
          .optimizers = {sgd(net, 0.05, 0.9)},
          .schedulers = {composer::optim::LinearScheduler{.alpha_i = 1.0, .alpha_f = 0.1, .t_max = Time("9ba")}},
          .save_folder = save_folder,
          .save_interval = save_interval,
          .load_path = load_path,
          .seed = 11,
          .progress_bar = false};
}

// The two traces are equal line for line; a difference is reported at its first line.
void check_same_trace(const std::vector<std::string>& resumed, const std::vector<std::string>& uninterrupted) {
  CHECK(resumed.size() == uninterrupted.size());
  for (std::size_t i = 0; i < std::min(resumed.size(), uninterrupted.size()); ++i) {
    if (resumed[i] == uninterrupted[i]) continue;
    CAPTURE(i);
    CHECK(resumed[i] == uninterrupted[i]);
    return;
  }
}

void check_same_parameters(torch::nn::Module& a, torch::nn::Module& b) {
  const auto pa = a.parameters();
  const auto pb = b.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));
}
}  // namespace trainer_test

TEST_CASE("a checkpoint taken at the end of an epoch resumes with the next epoch's EPOCH_START") {
  // save_interval 1ep saves at EPOCH_CHECKPOINT, after EPOCH_END and its evaluation, with the clock already at the
  // next epoch (batch_in_epoch 0): the resumed run goes on with that epoch and never repeats the finished one's end.
  const std::string dir = fresh_dir("epoch_end");
  auto reference_net = make_dropout_net(42);
  composer::Trainer<Trace> reference(reference_net, epoch_end_options(*reference_net, dir, Time("1ep"), ""));
  reference.fit();
  const std::string checkpoint = dir + "/ep1-ba3-rank0.pt";
  REQUIRE(io::exists(checkpoint));

  auto resumed_net = make_dropout_net(999);
  composer::Trainer<Trace> resumed(resumed_net, epoch_end_options(*resumed_net, "", Time("1ep"), checkpoint));
  CHECK(resumed.state().timestamp.epoch().count() == 1);
  CHECK(resumed.state().timestamp.batch_in_epoch().count() == 0);
  resumed.fit();

  const auto tail = resumed.get<Trace>().after("fit_start");
  REQUIRE_FALSE(tail.empty());
  CHECK(tail.front().rfind("epoch_start ep1 ba3", 0) == 0);
  // every later event sees what the uninterrupted run saw: clock, learning rate and loss, bit for bit
  check_same_trace(tail, reference.get<Trace>().after("epoch_checkpoint ep1 ba3"));
  check_same_parameters(*reference_net, *resumed_net);
}

TEST_CASE("a checkpoint taken on the last batch of an epoch resumes at that epoch's end, as Composer does") {
  // A batch interval saves at BATCH_CHECKPOINT, before the epoch ended: the clock is at batch_in_epoch 3 of 3 and
  // EPOCH_END, the epoch's evaluation and EPOCH_CHECKPOINT have not happened yet in that checkpoint. The resumed
  // run fires them once (Composer's `_train_loop` finds the loader exhausted and ends the epoch), before any batch,
  // with the learning rate and loss the uninterrupted run had there.
  const std::string dir = fresh_dir("last_batch");
  auto reference_net = make_dropout_net(42);
  composer::Trainer<Trace> reference(reference_net, epoch_end_options(*reference_net, dir, Time("3ba"), ""));
  reference.fit();
  const std::string checkpoint = dir + "/ep0-ba3-rank0.pt";
  REQUIRE(io::exists(checkpoint));

  auto resumed_net = make_dropout_net(999);
  composer::Trainer<Trace> resumed(resumed_net, epoch_end_options(*resumed_net, "", Time("3ba"), checkpoint));
  CHECK(resumed.state().timestamp.epoch().count() == 0);
  CHECK(resumed.state().timestamp.batch_in_epoch().count() == 3);
  // before any batch: the learning rate the last batch trained with (the schedule at ba2, 1 - 0.9 * 2/9 of 0.05),
  // not the optimizer's initial 0.05, and the last batch's loss
  const double lr = resumed.state().optimizers.front()->param_groups().front().options().get_lr();
  CHECK(lr == doctest::Approx(0.05 * (1.0 - 0.9 * 2.0 / 9.0)).epsilon(1e-12));
  CHECK(resumed.state().loss.defined());
  resumed.fit();

  const auto& lines = resumed.get<Trace>().lines;
  REQUIRE(lines.size() > 5);
  CHECK(lines[2].rfind("after_load ep0 ba3 ", 0) == 0);
  CHECK(lines[2].find("loss=none") == std::string::npos);
  const auto tail = resumed.get<Trace>().after("fit_start");
  REQUIRE(tail.size() > 2);
  CHECK(tail[0].rfind("before_dataloader ep0 ba3", 0) == 0);
  CHECK(tail[1].rfind("epoch_end ep1 ba3", 0) == 0);
  check_same_trace(tail, reference.get<Trace>().after("batch_checkpoint ep0 ba3"));
  const auto epoch_ends = std::count_if(tail.begin(), tail.end(), [](const std::string& l) { return l.rfind("epoch_end", 0) == 0; });
  CHECK(epoch_ends == 3);  // epochs 0, 1 and 2 each end once
  check_same_parameters(*reference_net, *resumed_net);
}

TEST_CASE("a mid-epoch resume keeps the learning rate a per-epoch schedule set at the epoch's start") {
  // Stepped per epoch, the schedule sets the rate at the first batch of an epoch only: a run resumed inside the
  // epoch must train its remaining batches at the checkpointed rate, not at the optimizer's initial one.
  const std::string dir = fresh_dir("per_epoch_schedule");
  auto options = [](torch::nn::Module& net, const std::string& load_path) {
    composer::TrainerOptions o = epoch_end_options(net, "", Time("1ep"), load_path);
    o.schedulers = {composer::optim::LinearScheduler{.alpha_i = 1.0, .alpha_f = 0.1, .t_max = Time("3ep")}};
    o.step_schedulers_every_batch = false;
    return o;
  };
  auto reference_net = make_dropout_net(42);
  composer::Trainer<Trace> reference(reference_net, options(*reference_net, ""));
  reference.fit();

  auto first_net = make_dropout_net(42);
  composer::Trainer<Trace> first(first_net, options(*first_net, ""));
  first.fit(Time("4ba"));  // epoch 1, batch 1 of 3
  first.save_checkpoint(dir + "/mid.pt");

  auto resumed_net = make_dropout_net(999);
  composer::Trainer<Trace> resumed(resumed_net, options(*resumed_net, dir + "/mid.pt"));
  const double lr = resumed.state().optimizers.front()->param_groups().front().options().get_lr();
  CHECK(lr == doctest::Approx(0.05 * (1.0 - 0.9 / 3.0)).epsilon(1e-12));  // the schedule at epoch 1, not 0.05
  resumed.fit();
  check_same_trace(resumed.get<Trace>().after("fit_start"), reference.get<Trace>().after("batch_checkpoint ep1 ba4"));
  check_same_parameters(*reference_net, *resumed_net);
}

TEST_CASE("State::loss holds no tensor before a run's first loss, and a checkpoint carries the last one") {
  const std::string dir = fresh_dir("loss");
  auto net = make_linear();
  composer::Trainer<> trainer(net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("1ba"),
                                    .optimizers = {sgd(*net)}, .seed = 1, .progress_bar = false});
  CHECK_FALSE(trainer.state().loss.defined());
  trainer.save_checkpoint(dir + "/before.pt");  // no loss yet: none saved
  trainer.fit();
  REQUIRE(trainer.state().loss.defined());
  const double loss = trainer.state().loss.item<double>();
  trainer.save_checkpoint(dir + "/after.pt");

  auto fresh_net = make_linear(3);
  composer::Trainer<> fresh(fresh_net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("2ba"),
                                        .optimizers = {sgd(*fresh_net)}, .load_path = dir + "/after.pt", .seed = 1,
                                        .progress_bar = false});
  REQUIRE(fresh.state().loss.defined());
  CHECK(fresh.state().loss.item<double>() == loss);
  CHECK_FALSE(fresh.state().loss.requires_grad());
  fresh.load_checkpoint(dir + "/before.pt");
  CHECK_FALSE(fresh.state().loss.defined());
}

TEST_CASE("checkpoints are saved at intervals, the last k kept, and latest points at the newest") {
  const std::string dir = fresh_dir("interval");
  auto net = make_linear();
  composer::Trainer<> trainer(net, {.train_dataloader = make_loader(8, 4),
                                    .max_duration = Time("7ba"),
                                    .optimizers = {sgd(*net)},
                                    .save_folder = dir,
                                    .save_interval = Time("2ba"),
                                    .save_num_checkpoints_to_keep = 2,
                                    .seed = 1,
                                    .progress_bar = false});
  trainer.fit();
  // two batches per epoch; saves at ba2, ba4, ba6 (named with the epoch still running at BATCH_CHECKPOINT) and
  // once at the end (ba7); only the last two remain
  CHECK_FALSE(io::exists(dir + "/ep0-ba2-rank0.pt"));
  CHECK_FALSE(io::exists(dir + "/ep1-ba4-rank0.pt"));
  CHECK(io::exists(dir + "/ep2-ba6-rank0.pt"));
  CHECK(io::exists(dir + "/ep3-ba7-rank0.pt"));
  CHECK(io::read_symlink(dir + "/latest-rank0.pt") == "ep3-ba7-rank0.pt");
  CHECK(trainer.saved_checkpoints().size() == 2);
}

TEST_CASE("a corrupt, truncated or foreign checkpoint is refused and nothing is lost") {
  const std::string dir = fresh_dir("corrupt");
  auto net = make_linear();
  composer::Trainer<> trainer(net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("2ba"),
                                    .optimizers = {sgd(*net)}, .seed = 1, .progress_bar = false});
  trainer.fit();
  const std::string good = dir + "/good.pt";
  trainer.save_checkpoint(good);
  const auto size = io::file_size(good);
  const auto before = net->weight.clone();

  // truncated copy
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes(size / 2, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(dir + "/truncated.pt", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::ofstream(dir + "/garbage.pt") << "this is not a checkpoint";
  CHECK_THROWS_WITH_AS(trainer.load_checkpoint(dir + "/truncated.pt"), doctest::Contains("corrupt or truncated"),
                       composer::CheckpointError);
  CHECK_THROWS_WITH_AS(trainer.load_checkpoint(dir + "/garbage.pt"), doctest::Contains("garbage.pt"),
                       composer::CheckpointError);
  CHECK_THROWS_WITH_AS(trainer.load_checkpoint(dir + "/missing.pt"), doctest::Contains("does not exist"),
                       composer::CheckpointError);
  CHECK(torch::equal(net->weight, before));

  // a checkpoint of another model is refused before anything changes
  torch::nn::Linear other(4, 5);
  composer::Trainer<> other_trainer(other, {.train_dataloader = make_loader(8, 4), .max_duration = Time("1ba"),
                                            .optimizers = {sgd(*other)}, .seed = 1, .progress_bar = false});
  const auto other_before = other->weight.clone();
  CHECK_THROWS_WITH_AS(other_trainer.load_checkpoint(good), doctest::Contains("shape"), composer::CheckpointError);
  CHECK(torch::equal(other->weight, other_before));

  // a checkpoint of other policies is refused
  composer::Trainer<Recorder> recorder_trainer(make_linear(), {.train_dataloader = make_loader(8, 4),
                                                               .max_duration = Time("1ba"), .seed = 1,
                                                               .progress_bar = false});
  CHECK_THROWS_WITH_AS(recorder_trainer.load_checkpoint(good), doctest::Contains("saved with policies"),
                       composer::CheckpointError);

  // a failing save leaves the previous checkpoint whole: the temporary name is blocked by a folder
  io::create_directories(dir + "/good.pt.tmp");
  trainer.fit(Time("1ba"));
  CHECK_THROWS_AS(trainer.save_checkpoint(good), composer::CheckpointError);
  CHECK(io::file_size(good) == size);
  trainer.load_checkpoint(good);
  CHECK(trainer.state().timestamp.batch().count() == 2);
  CHECK(torch::equal(net->weight, before));
}

namespace trainer_test {
// Keeps the weights as they stand after each completed step.
struct WeightsAtBatchEnd {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_END};
  std::vector<torch::Tensor> weights;
  void apply(Event, composer::State& state) {
    weights.clear();
    for (const auto& p : state.model->parameters()) weights.push_back(p.detach().clone());
  }
};
}  // namespace trainer_test

TEST_CASE("a NaN loss is reported with its step and no update is applied") {
  auto net = make_linear();
  int calls = 0;
  composer::Model model(net, [&calls](const torch::Tensor& out, const torch::Tensor& target) {
    auto loss = composer::cross_entropy_loss(out, target);
    return ++calls == 3 ? loss * std::nan("") : loss;
  });
  composer::Trainer<WeightsAtBatchEnd> trainer(model, {.train_dataloader = make_loader(16, 4),
                                                       .max_duration = Time("1ep"),
                                                       .optimizers = {sgd(*net, 0.1, 0.9)},
                                                       .seed = 1,
                                                       .progress_bar = false});
  CHECK_THROWS_WITH_AS(trainer.fit(), doctest::Contains("loss is NaN at step 3 (epoch 0, batch 2"),
                       composer::NonFiniteLossError);
  CHECK(trainer.state().timestamp.batch().count() == 2);
  const auto& after_two = trainer.get<WeightsAtBatchEnd>().weights;
  const auto now = net->parameters();
  REQUIRE(after_two.size() == now.size());
  for (std::size_t i = 0; i < now.size(); ++i) CHECK(torch::equal(now[i], after_two[i]));
}

TEST_CASE("predict returns CPU outputs for every batch and fires the predict events") {
  auto net = make_linear();
  composer::Trainer<Recorder> trainer(net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("1ba"),
                                            .optimizers = {sgd(*net)}, .seed = 1, .progress_bar = false});
  trainer.get<Recorder>().seen.clear();
  const auto outputs = trainer.predict(make_loader(10, 4));
  REQUIRE(outputs.size() == 3);
  CHECK(outputs[2].size(0) == 2);
  CHECK(outputs[0].size(1) == 3);
  const auto& seen = trainer.get<Recorder>().seen;
  CHECK(seen.front() == "predict_start");
  CHECK(seen.back() == "predict_end");
  CHECK(std::count(seen.begin(), seen.end(), "predict_before_forward") == 3);
  CHECK(trainer.state().predict_timestamp.sample().count() == 10);
}

TEST_CASE("bad trainer arguments are clear errors") {
  auto net = make_linear();
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.device_train_microbatch_size = 0, .progress_bar = false}),
                       doctest::Contains("device_train_microbatch_size must be positive"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.eval_interval = Time("0.5dur"), .progress_bar = false}),
                       doctest::Contains("eval_interval must be in ep, ba, sp or tok"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.precision = composer::Precision::amp_bf16, .progress_bar = false}),
                       doctest::Contains("needs a CUDA device"), std::invalid_argument);
  composer::Trainer<> no_optimizer(net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("1ba"),
                                         .progress_bar = false});
  CHECK_THROWS_WITH_AS(no_optimizer.fit(), doctest::Contains("at least one optimizer"), std::invalid_argument);
  // a loader whose batches disagree in size
  std::vector<composer::Batch> bad = {{torch::randn({4, 4}), torch::randint(0, 3, {3})}};
  composer::Trainer<> mismatched(net, {.train_dataloader = bad, .max_duration = Time("1ba"), .optimizers = {sgd(*net)},
                                       .progress_bar = false});
  CHECK_THROWS_WITH_AS(mismatched.fit(), doctest::Contains("4 inputs but 3 targets"), std::invalid_argument);
}

TEST_CASE("TrainerOptions::validate names the first option that cannot work") {
  auto net = make_linear();
  CHECK_NOTHROW(composer::TrainerOptions{}.validate());
  auto message = [](const composer::TrainerOptions& options) {
    try {
      options.validate();
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  CHECK(message({.device_train_microbatch_size = 0}) == "composer: device_train_microbatch_size must be positive, got 0");
  CHECK(message({.scale_schedule_ratio = 0.0}) == "composer: scale_schedule_ratio must be positive");
  CHECK(message({.eval_interval = Time("0.5dur")}) ==
        "composer: eval_interval must be in ep, ba, sp or tok, got 0.5dur");
  CHECK(message({.eval_interval = Time("3sp")}) == "accepted");
  CHECK(message({.save_interval = Time("4096tok")}) == "accepted");
  CHECK(message({.save_folder = "somewhere", .save_interval = Time("0ba")}) ==
        "composer: save_interval must be positive when save_folder is set");
  CHECK(message({.save_interval = Time("0ba")}) == "accepted");
  CHECK(message({.precision = composer::Precision::amp_bf16}) == "composer: precision amp_bf16 needs a CUDA device");
  CHECK(message({.optimizers = {nullptr}}) == "composer: an optimizer in the options is null");
  // the Trainer counts epochs, batches, samples and tokens: a duration in iterations would never end
  CHECK(message({.max_duration = Time("2iter")}) ==
        "composer: max_duration 2iter is in a unit the Trainer does not count (it counts ep, ba, sp and tok): training "
        "would never stop");
  CHECK(message({.max_duration = Time("100tok")}) == "accepted");
  CHECK(message({.max_duration = Time("2iter")}).find("max_duration 2iter is in a unit") != std::string::npos);
  CHECK(message({.max_duration = Time("640sp")}) == "accepted");
  {
    composer::Trainer<> trainer(net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("1ba"),
                                      .optimizers = {sgd(*net)}, .progress_bar = false});
    CHECK_THROWS_WITH_AS(trainer.fit(Time("10iter")), doctest::Contains("a unit the Trainer does not count"),
                         std::invalid_argument);
    CHECK(trainer.state().timestamp.batch().count() == 0);
  }
  CHECK(message({.max_duration = Time("4ep"), .scale_schedule_ratio = 0.5}) ==
        "composer: scale_schedule_ratio needs at least one scheduler");
  const composer::Scheduler constant = [](const composer::State&, double) { return 1.0; };
  CHECK(message({.max_duration = Time("1ba"), .schedulers = {constant}, .scale_schedule_ratio = 0.25}) ==
        "composer: scale_schedule_ratio 0.250000 scales max_duration 1ba to zero");
  // the Trainer refuses the same options with the same message
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.scale_schedule_ratio = -1.0, .progress_bar = false}),
                       "composer: scale_schedule_ratio must be positive", std::invalid_argument);
  // the scaled duration is what the trainer trains for
  const composer::TrainerOptions scaled{.max_duration = Time("4ep"), .schedulers = {constant}, .scale_schedule_ratio = 0.5};
  CHECK(message(scaled) == "accepted");
  CHECK(*scaled.scaled_max_duration() == Time("2ep"));
  CHECK_FALSE(composer::TrainerOptions{}.scaled_max_duration().has_value());
}

TEST_CASE("seed_everything seeds LibTorch's generator and returns the seed") {
  CHECK(composer::seed_everything(42, torch::kCPU, false) == 42);
  const auto first = torch::rand({5});
  composer::seed_everything(42, torch::kCPU, false);
  CHECK(torch::equal(first, torch::rand({5})));
  composer::seed_everything(43, torch::kCPU, false);
  CHECK_FALSE(torch::equal(first, torch::rand({5})));
}

TEST_CASE("interval_crossed fires when the clock passes a multiple of the interval in its unit") {
  const composer::Timestamp start;
  const composer::Timestamp one = start.to_next_batch(4);
  const composer::Timestamp two = one.to_next_batch(4);
  CHECK_FALSE(composer::interval_crossed(Time("2ba"), composer::TimeUnit::BATCH, start, one));
  CHECK(composer::interval_crossed(Time("2ba"), composer::TimeUnit::BATCH, one, two));
  CHECK_FALSE(composer::interval_crossed(Time("2ba"), composer::TimeUnit::EPOCH, one, two));
  CHECK_FALSE(composer::interval_crossed(Time("0ba"), composer::TimeUnit::BATCH, one, two));
  CHECK(composer::interval_crossed(Time("1ep"), composer::TimeUnit::EPOCH, two, two.to_next_epoch()));
}

TEST_CASE("a NaN or infinite loss is refused naming the step") {
  composer::Timestamp timestamp = composer::Timestamp{}.to_next_batch(4).to_next_batch(4);
  CHECK_NOTHROW(composer::check_finite_loss(0.5, timestamp));
  CHECK_THROWS_WITH_AS(composer::check_finite_loss(std::nan(""), timestamp),
                       "composer: the training loss is NaN at step 3 (epoch 0, batch 2 of the epoch, counting from 0); "
                       "this step's update was not applied",
                       composer::NonFiniteLossError);
  CHECK_THROWS_WITH_AS(composer::check_finite_loss(INFINITY, timestamp), doctest::Contains("is infinite at step 3"),
                       composer::NonFiniteLossError);
}

TEST_CASE("schedulers multiply each parameter group's base learning rate") {
  auto net = make_linear();
  composer::State state(net);
  state.optimizers = {sgd(*net, 0.1), sgd(*net, 0.3)};
  const std::vector<double> bases = composer::base_learning_rates(state.optimizers);
  REQUIRE(bases == std::vector<double>{0.1, 0.3});
  composer::apply_schedulers(state, bases, true, 1.0);  // no scheduler: nothing changes
  CHECK(state.optimizers[1]->param_groups()[0].options().get_lr() == doctest::Approx(0.3));
  state.schedulers = {[](const composer::State&, double) { return 0.5; },
                      [](const composer::State&, double ratio) { return ratio; }};
  composer::apply_schedulers(state, bases, true, 0.5);
  CHECK(state.optimizers[0]->param_groups()[0].options().get_lr() == doctest::Approx(0.025));
  CHECK(state.optimizers[1]->param_groups()[0].options().get_lr() == doctest::Approx(0.075));
  // stepped per epoch, a batch inside the epoch keeps the rate
  state.timestamp = state.timestamp.to_next_batch(4);
  composer::apply_schedulers(state, {1.0, 1.0}, false, 1.0);
  CHECK(state.optimizers[0]->param_groups()[0].options().get_lr() == doctest::Approx(0.025));
}

TEST_CASE("the checkpoint saver names, rotates and links the checkpoints it saves") {
  const std::string dir = fresh_dir("saver");
  auto net = make_linear();
  composer::State state(net);
  std::vector<std::string> written;
  auto save = [&](const std::string& path) {
    std::ofstream(path) << "checkpoint";
    written.push_back(path);
  };
  auto advance_batch = [&] {
    state.previous_timestamp = state.timestamp;
    state.timestamp = state.timestamp.to_next_batch(4);
  };
  composer::CheckpointSaver off;
  CHECK_FALSE(off.enabled());
  advance_batch();
  off.batch_checkpoint(state, save);
  off.fit_end(state, save);
  CHECK(written.empty());

  composer::CheckpointSaver saver(dir, Time("2ba"), 2);
  CHECK(saver.enabled());
  saver.batch_checkpoint(state, save);  // ba1: not a multiple of 2
  saver.epoch_checkpoint(state, save);  // an interval in ba never fires at EPOCH_CHECKPOINT
  CHECK(written.empty());
  for (int i = 0; i < 5; ++i) {  // ba2 … ba6
    advance_batch();
    saver.batch_checkpoint(state, save);
  }
  CHECK(written == std::vector<std::string>{dir + "/ep0-ba2-rank0.pt", dir + "/ep0-ba4-rank0.pt", dir + "/ep0-ba6-rank0.pt"});
  CHECK_FALSE(io::exists(dir + "/ep0-ba2-rank0.pt"));
  CHECK(saver.saved_checkpoints() == std::vector<std::string>{dir + "/ep0-ba4-rank0.pt", dir + "/ep0-ba6-rank0.pt"});
  CHECK(io::read_symlink(dir + "/latest-rank0.pt") == "ep0-ba6-rank0.pt");
  saver.fit_end(state, save);  // ba6 was just saved
  CHECK(written.size() == 3);
  advance_batch();
  saver.fit_end(state, save);  // ba7 was not
  CHECK(written.back() == dir + "/ep0-ba7-rank0.pt");
  CHECK(io::read_symlink(dir + "/latest-rank0.pt") == "ep0-ba7-rank0.pt");
  saver.resumed_at(state.timestamp.batch().count() + 1);
  advance_batch();
  saver.fit_end(state, save);  // a run resumed at ba8 does not save ba8 again
  CHECK(written.size() == 4);

  composer::CheckpointSaver per_epoch(dir, Time("1ep"), -1);
  state.previous_timestamp = state.timestamp;
  state.timestamp = state.timestamp.to_next_epoch();
  per_epoch.batch_checkpoint(state, save);
  CHECK(written.size() == 4);
  per_epoch.epoch_checkpoint(state, save);
  CHECK(written.back() == dir + "/ep1-ba8-rank0.pt");
}

TEST_CASE("a trainer's checkpoint holds every entry of the layout") {
  const std::string dir = fresh_dir("layout");
  auto net = make_linear();
  composer::Trainer<> trainer(net, {.train_dataloader = make_loader(8, 4),
                                    .max_duration = Time("1ba"),
                                    .optimizers = {sgd(*net, 0.1, 0.9)},
                                    .seed = 7,
                                    .progress_bar = false});
  trainer.fit();
  trainer.save_checkpoint(dir + "/c.pt");
  namespace keys = composer::checkpoint::keys;
  torch::serialize::InputArchive archive;
  archive.load_from(dir + "/c.pt");
  // (a fresh tensor for each entry: reading into a defined tensor reuses its storage)
  auto entry = [&](const std::string& key) {
    torch::Tensor tensor;
    CHECK_MESSAGE(archive.try_read(key, tensor), "no entry ", key);
    return tensor;
  };
  CHECK(entry(keys::format).item<std::int64_t>() == composer::checkpoint::format_version);
  CHECK(entry(keys::optimizer_count).item<std::int64_t>() == 1);
  CHECK(entry(keys::base_learning_rates).item<double>() == doctest::Approx(0.1));
  CHECK(entry(keys::rank_zero_seed).item<std::int64_t>() == 7);
  CHECK(entry(keys::loss_scale).item<double>() == doctest::Approx(65536.0));
  CHECK(entry(keys::loss).item<double>() == trainer.state().loss.item<double>());
  CHECK(entry(std::string(keys::timestamp) + "/counters").numel() == 10);
  CHECK(entry(keys::cpu_rng).defined());
  torch::Tensor absent;
  CHECK_FALSE(archive.try_read(keys::cuda_rng, absent));
  CHECK(torch::equal(entry(std::string(keys::model) + "weight"), net->weight.detach()));
  torch::serialize::InputArchive optimizer;
  CHECK(archive.try_read(std::string(keys::optimizer) + "0", optimizer));
  c10::IValue names;
  archive.read(keys::policy_names, names);
  CHECK(names.toStringRef().empty());
}
