// A policy whose save_state is not const: the Trainer saves policies through a const reference, so it would
// never be called and the policy's state would be missing from every checkpoint.
#include "common.hpp"
struct Forgetful {
  static constexpr composer::EventSet events{composer::Event::BATCH_END};
  int steps = 0;
  void apply(composer::Event, MiniState&) { ++steps; }
  void save_state(OutArchive&) {}
  void load_state(InArchive&) {}
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Forgetful> engine(s);
  engine.run<composer::Event::BATCH_END>();
}
