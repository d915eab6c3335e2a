// A logger destination with nowhere for metrics or hyperparameters to go.
#include "common.hpp"
struct Mute {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr composer::EventSet events{composer::Event::BATCH_END};
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Mute> engine(s);
  engine.run<composer::Event::BATCH_END>();
}
