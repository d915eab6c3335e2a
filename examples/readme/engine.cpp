#include <composer/composer.hpp>
#include <torch/torch.h>

#include <cstdio>

using composer::Event;

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
      state.loss = state.loss * (1 - mixing) + mixing * new_loss;
      logger.log_metrics({{"mixup/mixing", mixing}});
    }
  }
};

int main() {
  torch::nn::Linear my_module(16, 3);
  composer::State state(my_module, composer::Time(10, "epoch"));
  composer::Engine<MixUp> engine(state);

  state.batch = {torch::randn({8, 16}), torch::randint(0, 3, {8})};
  engine.run_event("after_dataloader");          // runtime name → the static path
  state.outputs = state.model.forward(state.batch.inputs);
  state.loss = state.model.loss(state.outputs, state.batch.targets);
  engine.run<Event::AFTER_LOSS>();               // compile-time event
  std::printf("mixing %.3f, mixed loss %.3f\n", engine.get<MixUp>().mixing, state.loss.item<double>());
}
