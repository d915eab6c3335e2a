// One training step of a linear model through composer's Engine, from an outside project.
#include <composer/composer.hpp>
#include <torch/nn/modules/linear.h>

#include <cstdio>

struct CountLoss {
  static constexpr composer::EventSet events{composer::Event::AFTER_LOSS};
  int seen = 0;
  void apply(composer::Event, composer::State& state) { seen += state.loss.defined() ? 1 : 0; }
};

int main() {
  torch::nn::Linear net(4, 3);
  composer::State state(net, composer::Time("1ep"));
  composer::Engine<CountLoss> engine(state);
  state.batch = {torch::randn({8, 4}), torch::randint(0, 3, {8})};
  state.outputs = state.model(state.batch.inputs);
  state.loss = state.model.loss(state.outputs, state.batch.targets);
  engine.run_event("after_loss");
  std::printf("consumer: %s\n", engine.get<CountLoss>().seen == 1 ? "ok" : "wrong");
  return engine.get<CountLoss>().seen == 1 ? 0 : 1;
}
