// The Welcome Tour of Composer, in C++: a hand-written training loop that fires events, a State that
// algorithms read and write, and an Engine<MixUp> whose MixUp is written here by the user, as in the tour.
//
// The data are synthetic: three Gaussian blobs in 16 dimensions, classified by a small MLP.
#include <composer/composer.hpp>
#include <composer/functional/mixup.hpp>

#include <torch/torch.h>

#include <cstdio>

using composer::Event;

// The tour's MixUp: a plain struct that says which events it handles and applies itself to the State.
// It keeps its own members between events, like the Python class's `self.permuted_target` and `self.mixing`.
struct MixUp {
  static constexpr composer::EventSet events{Event::AFTER_DATALOADER, Event::AFTER_LOSS};

  at::Tensor permuted_target;
  double mixing = 0.0;

  void apply(Event event, composer::State& state, const composer::Logger& logger) {
    auto [input, target] = state.batch;

    if (event == Event::AFTER_DATALOADER) {
      auto [new_input, permuted_target, mixing] = composer::functional::mixup_batch(input, target, {}, /*alpha=*/0.2);
      this->permuted_target = permuted_target;
      this->mixing = mixing;
      state.batch = {new_input, target};
    }

    if (event == Event::AFTER_LOSS) {
      auto new_loss = state.model.loss(state.outputs, permuted_target);
      state.loss = state.loss * (1 - mixing);
      state.loss = state.loss + mixing * new_loss;
      logger.log_metrics({{"mixup/mixing", mixing}});
    }
  }
};

int main() {
  constexpr int threads = 2;
  at::set_num_threads(threads);
  torch::manual_seed(0);

  // Synthetic data: 3 classes, 16 features, 1536 samples in batches of 64.
  const int64_t num_samples = 1536, num_features = 16, num_classes = 3, batch_size = 64;
  const auto centres = torch::randn({num_classes, num_features}) * 2.0;
  const auto labels = torch::randint(0, num_classes, {num_samples});
  const auto features = centres.index_select(0, labels) + torch::randn({num_samples, num_features});

  torch::nn::Sequential model(torch::nn::Linear(num_features, 64), torch::nn::ReLU(),
                              torch::nn::Linear(64, num_classes));
  auto optimizer = std::make_shared<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));

  composer::State state(model, composer::Time(10, "epoch"), /*rank_zero_seed=*/0);
  state.optimizers = {optimizer};

  composer::Engine<MixUp> engine(state);

  const int64_t num_epochs = state.max_duration()->count();
  std::printf("welcome_tour: %lld epochs of %lld batches, %d threads\n", static_cast<long long>(num_epochs),
              static_cast<long long>(num_samples / batch_size), threads);

  engine.run_event("init");
  engine.run_event("fit_start");
  for (int64_t epoch = 0; epoch < num_epochs; ++epoch) {
    engine.run_event("epoch_start");
    const auto order = torch::randperm(num_samples);
    double epoch_loss = 0.0;
    for (int64_t start = 0; start < num_samples; start += batch_size) {
      const auto rows = order.slice(0, start, start + batch_size);
      state.batch = {features.index_select(0, rows), labels.index_select(0, rows)};
      engine.run_event("after_dataloader");

      engine.run_event("batch_start");

      engine.run_event("before_forward");
      state.outputs = state.model.forward(state.batch.inputs);
      engine.run_event("after_forward");

      engine.run_event("before_loss");
      state.loss = state.model.loss(state.outputs, state.batch.targets);
      engine.run_event("after_loss");

      engine.run_event("before_backward");
      state.loss.backward();
      engine.run_event("after_backward");

      for (auto& opt : state.optimizers) opt->step();
      for (auto& opt : state.optimizers) opt->zero_grad();
      epoch_loss += state.loss.item<double>();
      state.timestamp = state.timestamp.to_next_batch(rows.size(0));

      engine.run_event("batch_end");
    }
    state.timestamp = state.timestamp.to_next_epoch();
    engine.run_event("epoch_end");
    std::printf("epoch %lld: mean train loss %.4f (last mixing %.3f)\n", static_cast<long long>(epoch + 1),
                epoch_loss / static_cast<double>(num_samples / batch_size), engine.get<MixUp>().mixing);
  }
  engine.run_event("fit_end");

  torch::NoGradGuard no_grad;
  model->eval();
  const double accuracy =
      state.model(features).argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
  std::printf("welcome_tour: train accuracy %.4f after %s\n", accuracy, state.timestamp.to_string().c_str());
  return accuracy > 0.9 ? 0 : 1;
}
