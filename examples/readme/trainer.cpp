#include <composer/composer.hpp>
#include <torch/torch.h>

#include <cstdio>

// A callback of one's own: a plain struct naming its events (Composer's `Callback`).
struct PrintLoss {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::EPOCH_END};

  void apply(composer::Event, composer::State& state, const composer::Logger&) {
    std::printf("epoch %lld: last loss %.3f\n", static_cast<long long>(state.timestamp.epoch().count()),
                state.loss.item<double>());
  }
};

int main() {
  // 1024 noisy copies of ten random 28x28 patterns, labelled by pattern.
  torch::manual_seed(0);
  const auto patterns = torch::rand({10, 1, 28, 28});
  const auto labels = torch::randint(0, 10, {1024});
  const auto images = patterns.index_select(0, labels) + 0.3 * torch::randn({1024, 1, 28, 28});
  composer::data::TensorLoader train_loader(images, labels, {.batch_size = 64, .shuffle = true});
  composer::data::TensorLoader test_loader(images, labels, {.batch_size = 256});

  composer::models::SimpleCNN model;
  auto sgd = std::make_shared<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  composer::TrainerOptions options{
      .train_dataloader = train_loader,      // TensorLoader, any range of batches, or a torch::data loader
      .eval_dataloader = test_loader,
      .max_duration = composer::Time("2ep"),  // ep, ba, sp or tok
      .optimizers = {sgd},
      .device_train_microbatch_size = 32,    // gradient accumulation
      .save_folder = "checkpoints",
      .seed = 17,
  };
  composer::Trainer<composer::algorithms::MixUp, composer::algorithms::LabelSmoothing, PrintLoss> trainer(
      model, options, composer::algorithms::MixUp(/*alpha=*/0.2), composer::algorithms::LabelSmoothing(0.1),
      PrintLoss{});
  trainer.fit();                       // FIT_START … FIT_END through the static Engine
  auto metrics = trainer.eval().at("eval");  // {"accuracy", "cross_entropy"} of the evaluator "eval"
  std::printf("test accuracy %.3f\n", metrics.at("accuracy"));
  return metrics.at("accuracy") > 0.9 ? 0 : 1;
}
