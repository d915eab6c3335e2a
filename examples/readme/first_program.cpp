// The program of docs/first_program.md: a small CNN trained on Fashion-MNIST by composer::Trainer with two
// methods, a learning-rate schedule and three callbacks of its own; the run is cut short after one epoch and
// resumed from its checkpoint, as after a crash. Exits non-zero when something is wrong.
//
//   readme_first_program [fashion-mnist folder]    (default: /usr/share/datasets/fashion-mnist)
#include <composer/composer.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace {

using composer::Event;
namespace alg = composer::algorithms;
namespace data = composer::data;

// The model: any LibTorch module whose forward takes one tensor and returns one.
struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)))),
        fc(register_module("fc", torch::nn::Linear(32 * 7 * 7, 10))) {}

  at::Tensor forward(const at::Tensor& x) {
    auto h = torch::max_pool2d(torch::relu(conv1(x)), 2);  // [N, 16, 14, 14]
    h = torch::max_pool2d(torch::relu(conv2(h)), 2);       // [N, 32, 7, 7]
    return fc(h.flatten(1));                                // logits [N, 10]
  }

  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc;
};
TORCH_MODULE(Net);

// Callback 1 logs a metric: the accuracy on each training batch (on the inputs as CutOut left them).
struct TrainAccuracy {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_FORWARD, Event::BATCH_END};
  static constexpr const char* name = "TrainAccuracy";  // the name checkpoints know it by
  std::int64_t correct = 0;
  std::int64_t seen = 0;

  void apply(Event event, composer::State& state, const composer::Logger& logger) {
    if (event == Event::AFTER_FORWARD) {  // per microbatch; the targets are still class indices here
      correct += state.outputs.argmax(1).eq(state.batch.targets).sum().item<std::int64_t>();
      seen += state.batch.targets.size(0);
    } else {  // BATCH_END: the whole batch is done
      logger.log_metrics({{"metrics/train/accuracy", static_cast<double>(correct) / static_cast<double>(seen)}});
      correct = seen = 0;
    }
  }
};

// Callback 2 ends training once the test accuracy reaches a target (Composer's ThresholdStopper).
struct StopAtAccuracy {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::EVAL_END};
  static constexpr const char* name = "StopAtAccuracy";
  double target = 1.0;
  std::int64_t asked_at = -1;  // the batch after which it stopped the run, -1 if it did not

  void apply(Event, composer::State& state) {
    if (asked_at < 0 && state.eval_metric_values.at("eval").at("accuracy") >= target) {
      asked_at = state.timestamp.batch().count();
      state.stop_training();
    }
  }
};

// Callback 3 has state that checkpoints keep: the best test accuracy so far and the batch it was reached at.
struct BestAccuracy {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::EVAL_END};
  static constexpr const char* name = "BestAccuracy";
  double accuracy = 0.0;
  std::int64_t batch = -1;

  void apply(Event, composer::State& state) {
    const double now = state.eval_metric_values.at("eval").at("accuracy");
    if (now > accuracy) {
      accuracy = now;
      batch = state.timestamp.batch().count();
    }
  }
  void save_state(torch::serialize::OutputArchive& archive) const {
    archive.write("accuracy", torch::tensor(accuracy, torch::kDouble));
    composer::write_archived_integer(archive, "batch", batch);
  }
  void load_state(torch::serialize::InputArchive& archive) {
    torch::Tensor stored;  // a new tensor for each read: read() into a used one keeps that one's type
    archive.read("accuracy", stored);
    accuracy = stored.item<double>();
    batch = composer::read_archived_integer(archive, "batch");
  }
};

const std::string run_folder = "first_program_run";  // checkpoints/ and metrics.csv, under the working folder

// What one run of `train` reports.
struct Report {
  composer::Timestamp started_at;  // after loading the checkpoint, if any
  BestAccuracy best_at_start;      // BestAccuracy as the checkpoint restored it
  composer::Timestamp ended_at;
  BestAccuracy best;
  std::int64_t stop_asked_at = -1;
  double accuracy = 0.0;  // test accuracy at the end
};

// Builds the model, its optimizer and a Trainer, resumes from `load_path` unless it is empty, and trains for
// `duration` (or to max_duration without it).
Report train(const data::TensorLoader& train_loader, const data::TensorLoader& test_loader,
             const std::string& load_path, std::optional<composer::Time> duration) {
  torch::manual_seed(17);  // the same initial weights every time
  Net model;
  auto sgd = std::make_shared<torch::optim::SGD>(model->parameters(),
                                                 torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(true));
  composer::TrainerOptions options{
      .train_dataloader = train_loader,
      .eval_dataloader = test_loader,
      .max_duration = composer::Time("4ep"),
      .optimizers = {sgd},
      // multiplies the optimizer's lr: 0 -> 1 over 20 batches, then a cosine down to 0 at 4 epochs
      .schedulers = {composer::optim::CosineAnnealingWithWarmupScheduler{.t_warmup = composer::Time("20ba"),
                                                                         .t_max = composer::Time("4ep")}},
      .eval_subset_num_batches = 2,  // evaluate on 2 test batches of 1000
      .save_folder = run_folder + "/checkpoints",
      .save_num_checkpoints_to_keep = 2,
      .load_path = load_path,
      .seed = 17,
      .metrics_file = run_folder + "/metrics.csv",
  };
  composer::Trainer<alg::CutOut, alg::LabelSmoothing, TrainAccuracy, StopAtAccuracy, BestAccuracy> trainer(
      model, options, alg::CutOut({.num_holes = 1, .length = 0.25}), alg::LabelSmoothing(0.1), TrainAccuracy{},
      StopAtAccuracy{.target = 0.84}, BestAccuracy{});

  Report report;
  report.started_at = trainer.state().timestamp;
  report.best_at_start = trainer.get<BestAccuracy>();
  trainer.fit(duration);
  report.ended_at = trainer.state().timestamp;
  report.best = trainer.get<BestAccuracy>();
  report.stop_asked_at = trainer.get<StopAtAccuracy>().asked_at;
  report.accuracy = trainer.state().eval_metric_values.at("eval").at("accuracy");
  for (const auto& path : trainer.saved_checkpoints()) std::printf("first_program: kept %s\n", path.c_str());
  return report;
}

// Prints `what` and returns false when `ok` is false.
bool check(bool ok, const char* what) {
  if (!ok) std::fprintf(stderr, "first_program: FAILED: %s\n", what);
  return ok;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string data_folder = argc > 1 ? argv[1] : std::string(data::FashionMNIST::default_root);
  composer::io::remove_all(run_folder);  // start afresh

  // uint8 images [N, 1, 28, 28] and int64 labels [N]; each batch is normalised to mean 0, std 1 on the way out.
  const data::FashionMNIST train_set(data::Split::TRAIN, data_folder);
  const data::FashionMNIST test_set(data::Split::TEST, data_folder);
  const auto first = [](const at::Tensor& t) { return t.narrow(0, 0, 6400); };  // 50 batches an epoch
  const data::TensorLoader train_loader(first(train_set.images()), first(train_set.labels()),
                                        {.batch_size = 128, .shuffle = true, .seed = 17},
                                        data::normalize_fashion_mnist);
  const data::TensorLoader test_loader(test_set.images(), test_set.labels(), {.batch_size = 1000},
                                       data::normalize_fashion_mnist);

  // One epoch, then the program "crashes"; the second run resumes from the newest checkpoint and trains on
  // until max_duration or until StopAtAccuracy ends it.
  const Report first_run = train(train_loader, test_loader, "", composer::Time("1ep"));
  const Report resumed = train(train_loader, test_loader, run_folder + "/checkpoints/latest-rank0.pt", std::nullopt);

  std::printf("first_program: first run ended at %s, best accuracy %.4f at batch %lld\n",
              first_run.ended_at.to_string().c_str(), first_run.best.accuracy,
              static_cast<long long>(first_run.best.batch));
  std::printf("first_program: resumed at %s with best accuracy %.4f, ended at %s (stop asked at batch %lld)\n",
              resumed.started_at.to_string().c_str(), resumed.best_at_start.accuracy,
              resumed.ended_at.to_string().c_str(), static_cast<long long>(resumed.stop_asked_at));
  std::printf("first_program: test accuracy %.4f\n", resumed.accuracy);

  const std::int64_t end = resumed.ended_at.batch().count();
  bool ok = check(first_run.ended_at.epoch().count() == 1, "the first run trained one epoch");
  ok &= check(resumed.started_at == first_run.ended_at, "the second run resumed where the first ended");
  ok &= check(resumed.best_at_start.accuracy == first_run.best.accuracy &&
                  resumed.best_at_start.batch == first_run.best.batch,
              "the checkpoint restored BestAccuracy");
  ok &= check(resumed.stop_asked_at < 0 ? end == 200 : end == resumed.stop_asked_at,
              "training ended at max_duration (4ep) or where StopAtAccuracy asked");
  ok &= check(resumed.accuracy > 0.8, "test accuracy above 0.8");
  return ok ? 0 : 1;
} catch (const std::exception& error) {
  std::fprintf(stderr, "first_program: %s\n", error.what());
  return 1;
}
