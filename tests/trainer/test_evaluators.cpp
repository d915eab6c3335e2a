// Evaluators and metrics in Trainer runs: several named evaluators with their own loaders, metrics, intervals and
// batch limits (Composer's event counts), metric selection, a user's metric type, training metrics (their values
// against an independent computation, their reset per epoch, the targets they see, one update per step under a
// closure called twice) and the evaluator options the Trainer refuses.
#include <torch/torch.h>

#include <composer/callbacks/threshold_stopper.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/metrics.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using composer::Event;
using composer::Time;
namespace metrics = composer::metrics;

namespace evaluators_test {

// Every evaluation the Trainer runs: the evaluator's label at EVAL_START and its batches, and how often the
// events around evaluations fire.
struct EvalRecorder {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::EVAL_BEFORE_ALL, Event::EVAL_START,     Event::EVAL_BATCH_START,
                                             Event::EVAL_END,        Event::EVAL_AFTER_ALL, Event::EVAL_STANDALONE_START};
  std::vector<std::string> evaluations;  // "<label>@<training batch>"
  std::map<std::string, int> batches;    // eval batches by label
  std::map<std::string, int> counts;     // events by name
  void apply(Event event, composer::State& state) {
    ++counts[std::string(composer::to_string(event))];
    if (event == Event::EVAL_START)
      evaluations.push_back(state.dataloader_label + "@" + std::to_string(state.timestamp.batch().count()));
    if (event == Event::EVAL_BATCH_START) ++batches[state.dataloader_label];
    if (event == Event::EVAL_END) CHECK(state.eval_metric_values.contains(state.dataloader_label));
  }
};

// Every logged metric, by name, in the order logged.
struct LoggedMetrics {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr composer::EventSet events{};
  std::map<std::string, std::vector<double>> values;
  void log_metrics(const composer::Metrics& metrics, const composer::State&) {
    for (const auto& [name, value] : metrics) values[name].push_back(value);
  }
};

// Zeroes the targets in place at BEFORE_FORWARD: the training metrics must still see the targets of before.
struct ZeroTargets {
  static constexpr composer::EventSet events{Event::BEFORE_FORWARD};
  void apply(Event, composer::State& state) { state.batch.targets.zero_(); }
};

// Counts the samples it is given.
struct SampleCount {
  std::int64_t samples = 0;
  void update(const at::Tensor& outputs, const at::Tensor&) { samples += outputs.size(0); }
  composer::MetricValues compute() const { return {{"samples", static_cast<double>(samples)}}; }
  void reset() { samples = 0; }
};

// Plain SGD whose step evaluates the closure twice, as SAM's does.
struct TwiceSGD : torch::optim::SGD {
  using torch::optim::SGD::SGD;
  at::Tensor step(LossClosure closure) override {
    closure();
    return torch::optim::SGD::step(std::move(closure));
  }
};

struct Data {
  at::Tensor x, y;
};

Data make_data(std::int64_t samples, std::uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({samples, 4}), torch::randint(0, 3, {samples})};
}

composer::data::TensorLoader loader(const Data& data, std::int64_t batch) {
  return composer::data::TensorLoader(data.x, data.y, composer::data::TensorLoaderOptions{batch, false, false, 0});
}

torch::nn::Linear make_linear() {
  torch::manual_seed(7);
  return torch::nn::Linear(4, 3);
}

// Top-1 accuracy of `net` on `x` against `y`, computed here.
double accuracy_of(torch::nn::Linear& net, const at::Tensor& x, const at::Tensor& y) {
  torch::NoGradGuard no_grad;
  return net->forward(x).argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
}

}  // namespace evaluators_test

using namespace evaluators_test;

TEST_CASE("evaluators run at their own intervals on their own loaders, each stored and logged under its label") {
  const Data train = make_data(24, 1), test = make_data(20, 2), val = make_data(12, 3);
  auto net = make_linear();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  // Two epochs of three batches. "eval" every epoch on its 20 samples; "val" every 2 batches on its first batch
  // only, with top-2 accuracy alone.
  composer::Trainer<EvalRecorder, LoggedMetrics> trainer(
      net, {.train_dataloader = loader(train, 8),
            .eval_dataloader = loader(test, 10),
            .evaluators = {{.label = "val",
                            .dataloader = loader(val, 4),
                            .metrics = {metrics::Accuracy(2)},
                            .eval_interval = Time("2ba"),
                            .subset_num_batches = 1}},
            .max_duration = Time("2ep"),
            .optimizers = {sgd},
            .seed = 3,
            .progress_bar = false});
  trainer.fit();
  const auto& recorder = trainer.get<EvalRecorder>();
  CHECK(recorder.evaluations == std::vector<std::string>{"val@2", "eval@3", "val@4", "val@6", "eval@6"});
  // ba 2, ep 1, ba 4, ba 6 and ep 2 are five separate due points.
  CHECK(recorder.counts.at("eval_before_all") == 5);
  CHECK(recorder.counts.at("eval_after_all") == 5);
  CHECK(recorder.batches.at("val") == 3);      // one batch per evaluation
  CHECK(recorder.batches.at("eval") == 2 * 2);  // both batches of 10, twice
  const auto& values = trainer.state().eval_metric_values;
  CHECK(values.at("val").size() == 1);
  CHECK(values.at("eval").size() == 2);
  CHECK(values.at("eval").at("accuracy") == doctest::Approx(accuracy_of(net, test.x, test.y)));
  const auto& logged = trainer.get<LoggedMetrics>().values;
  CHECK(logged.at("metrics/val/top2_accuracy").size() == 3);
  CHECK(logged.at("metrics/eval/accuracy").size() == 2);
  CHECK(logged.at("metrics/eval/cross_entropy").size() == 2);
  CHECK_FALSE(logged.contains("metrics/val/accuracy"));
  CHECK_FALSE(logged.contains("metrics/train/accuracy"));  // no training metrics were asked for
  // The top-2 accuracy of "val" on its first batch, computed here with the final model.
  torch::NoGradGuard no_grad;
  const auto top2 = std::get<1>(net->forward(val.x.slice(0, 0, 4)).topk(2, 1));
  const double expected = top2.eq(val.y.slice(0, 0, 4).unsqueeze(1)).any(1).to(torch::kDouble).mean().item<double>();
  CHECK(values.at("val").at("top2_accuracy") == doctest::Approx(expected));
}

TEST_CASE("Composer's event counts with two evaluators limited to one batch each (tests/test_events.py)") {
  // 16 samples in batches of 4, microbatches of 2, one training batch per epoch, one epoch, evaluation every epoch.
  const Data data = make_data(16, 4);
  auto net = make_linear();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::Trainer<EvalRecorder> trainer(net, {.train_dataloader = loader(data, 4),
                                                .evaluators = {{.label = "first", .dataloader = loader(data, 4)},
                                                               {.label = "second", .dataloader = loader(data, 4)}},
                                                .max_duration = Time("1ep"),
                                                .optimizers = {sgd},
                                                .device_train_microbatch_size = 2,
                                                .eval_subset_num_batches = 1,
                                                .train_subset_num_batches = 1,
                                                .seed = 1,
                                                .progress_bar = false});
  trainer.fit();
  const auto& recorder = trainer.get<EvalRecorder>();
  CHECK(recorder.counts.at("eval_before_all") == 1);
  CHECK(recorder.counts.at("eval_start") == 2);
  CHECK(recorder.counts.at("eval_end") == 2);
  CHECK(recorder.counts.at("eval_batch_start") == 2);
  CHECK(recorder.evaluations == std::vector<std::string>{"first@1", "second@1"});
}

TEST_CASE("eval() runs every evaluator whatever its interval; eval(Evaluator) runs one more, not kept") {
  const Data data = make_data(12, 5);
  auto net = make_linear();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::Trainer<EvalRecorder> trainer(
      net, {.train_dataloader = loader(data, 4),
            .eval_dataloader = loader(data, 6),
            .evaluators = {{.label = "never_in_fit", .dataloader = loader(data, 12), .eval_interval = Time("0ep")}},
            .max_duration = Time("1ep"),
            .optimizers = {sgd},
            .seed = 1,
            .progress_bar = false});
  trainer.fit();
  CHECK(trainer.get<EvalRecorder>().evaluations == std::vector<std::string>{"eval@3"});
  const auto all = trainer.eval();
  CHECK(all.size() == 2);
  CHECK(all.at("never_in_fit").at("accuracy") == doctest::Approx(accuracy_of(net, data.x, data.y)));
  CHECK(all.at("eval").at("accuracy") == doctest::Approx(all.at("never_in_fit").at("accuracy")));

  const auto extra = trainer.eval({.label = "extra",
                                   .dataloader = loader(data, 5),
                                   .metrics = {SampleCount{}, metrics::PerClassAccuracy(3)},
                                   .metric_names = {"samples", "class_2$"}});
  CHECK(extra == trainer.state().eval_metric_values.at("extra"));
  CHECK(extra.size() == 2);
  CHECK(extra.at("samples") == 12.0);
  const at::Tensor is_2 = data.y.eq(2);
  torch::NoGradGuard no_grad;
  const double class_2 = net->forward(data.x).argmax(1).eq(2).logical_and(is_2).sum().item<double>() /
                         is_2.sum().item<double>();
  CHECK(extra.at("accuracy/class_2") == doctest::Approx(class_2));
  CHECK(trainer.get<EvalRecorder>().counts.at("eval_standalone_start") == 2);
  // The temporary evaluator is not kept: eval() still knows two.
  CHECK(trainer.eval().size() == 2);

  composer::Trainer<> without(make_linear(), {.train_dataloader = loader(data, 4), .optimizers = {sgd}});
  CHECK_THROWS_WITH_AS(without.eval(), doctest::Contains("eval() needs an eval_dataloader or evaluators"),
                       std::invalid_argument);
}

TEST_CASE("training metrics accumulate over each epoch on the targets of before BEFORE_FORWARD") {
  const Data data = make_data(24, 6);
  auto net = make_linear();
  // A learning rate of zero keeps the model as it is, so the expected values are computed here from it.
  auto sgd = std::make_shared<TwiceSGD>(net->parameters(), torch::optim::SGDOptions(0.0));
  composer::Trainer<ZeroTargets, LoggedMetrics> trainer(net, {.train_dataloader = loader(data, 8),
                                                              .max_duration = Time("2ep"),
                                                              .optimizers = {sgd},
                                                              .device_train_microbatch_size = 3,
                                                              .train_metrics = {metrics::Accuracy{}, SampleCount{}},
                                                              .seed = 2,
                                                              .progress_bar = false});
  trainer.fit();
  const auto& logged = trainer.get<LoggedMetrics>().values;
  const auto& accuracy = logged.at("metrics/train/accuracy");
  const auto& samples = logged.at("metrics/train/samples");
  REQUIRE(accuracy.size() == 6);
  // Counted once per step although the closure ran twice, and reset at the start of each epoch.
  CHECK(samples == std::vector<double>{8, 16, 24, 8, 16, 24});
  for (int epoch = 0; epoch < 2; ++epoch)
    for (int b = 1; b <= 3; ++b)
      CHECK(accuracy[static_cast<std::size_t>(epoch * 3 + b - 1)] ==
            doctest::Approx(accuracy_of(net, data.x.slice(0, 0, 8 * b), data.y.slice(0, 0, 8 * b))));
  CHECK(trainer.state().train_metric_values.at("train").at("accuracy") ==
        doctest::Approx(accuracy_of(net, data.x, data.y)));
  // The targets as they were before BEFORE_FORWARD zeroed them: not the accuracy against class 0.
  CHECK(accuracy_of(net, data.x, data.y) != doctest::Approx(accuracy_of(net, data.x, torch::zeros_like(data.y))));
}

TEST_CASE("a stopper watches a training metric (dataloader_label \"train\") after every batch") {
  const Data data = make_data(24, 8);
  auto net = make_linear();
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.0));
  composer::Trainer<composer::callbacks::ThresholdStopper> trainer(
      net,
      {.train_dataloader = loader(data, 8),
       .max_duration = Time("3ep"),
       .optimizers = {sgd},
       .train_metrics = {metrics::Accuracy{}},
       .seed = 2,
       .progress_bar = false},
      composer::callbacks::ThresholdStopper("accuracy", "train", -1.0, composer::callbacks::MetricComparison{}, true));
  trainer.fit();
  // Any accuracy is above -1: the first batch stops the run.
  CHECK(trainer.state().timestamp.batch().count() == 1);
  // After that one batch of 8 the watched value is the first batch's accuracy (the learning rate is zero).
  CHECK(trainer.state().train_metric_values.at("train").at("accuracy") ==
        doctest::Approx(accuracy_of(net, data.x.slice(0, 0, 8), data.y.slice(0, 0, 8))));
}

TEST_CASE("the Trainer refuses evaluators it cannot run, naming the evaluator and the problem") {
  const Data data = make_data(8, 9);
  auto make = [&](composer::TrainerOptions options) {
    options.train_dataloader = loader(data, 4);
    options.progress_bar = false;
    composer::Trainer<> trainer(make_linear(), std::move(options));
  };
  using E = composer::Evaluator;
  const auto refuses = [&](composer::TrainerOptions options, const std::string& message) {
    CAPTURE(message);
    CHECK_THROWS_WITH_AS(make(std::move(options)), doctest::Contains(message.c_str()), std::invalid_argument);
  };
  refuses({.eval_dataloader = loader(data, 4), .evaluators = {E{.label = "eval", .dataloader = loader(data, 4)}}},
          "two evaluators are labelled 'eval' (eval_dataloader is the evaluator 'eval')");
  refuses({.evaluators = {E{.label = "a", .dataloader = loader(data, 4)}, E{.label = "a", .dataloader = loader(data, 4)}}},
          "two evaluators are labelled 'a'");
  refuses({.evaluators = {E{.label = "train", .dataloader = loader(data, 4)}}}, "the label 'train' is reserved");
  refuses({.evaluators = {E{.dataloader = loader(data, 4)}}}, "an evaluator needs a label");
  refuses({.evaluators = {E{.label = "v"}}}, "evaluator 'v' has no data loader");
  refuses({.evaluators = {E{.label = "v", .dataloader = loader(data, 4), .eval_interval = Time("0.5dur")}}},
          "evaluator 'v': eval_interval must be in ep, ba, sp or tok, got 0.5dur");
  refuses({.evaluators = {E{.label = "v", .dataloader = loader(data, 4), .subset_num_batches = 0}}},
          "evaluator 'v': subset_num_batches must be positive or -1");
  refuses({.evaluators = {E{.label = "v", .dataloader = loader(data, 4), .metric_names = {"("}}}},
          "evaluator 'v': metric_names entry '(' is not a regular expression");
  refuses({.evaluators = {E{.label = "v", .dataloader = loader(data, 4), .metric_names = {"f1"}}}},
          "metric_names entry 'f1' selects none of its metrics (accuracy, cross_entropy)");
  refuses({.eval_dataloader = loader(data, 4), .eval_metrics = {}}, "evaluator 'eval' has no metric");
  refuses({.eval_subset_num_batches = -2}, "eval_subset_num_batches must be positive or -1 (all batches), got -2");
}
